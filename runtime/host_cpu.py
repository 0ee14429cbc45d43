"""This CPU's instruction-set features under LLVM's names, the names an artifact's manifest lists.

LLVM's own host feature list (llvmlite, a kcompile dependency) is the source: it knows every feature
codegen can enable, so the loader can refuse any feature this CPU does not report rather than only
those of a hand-kept table. Where llvmlite cannot answer, /proc/cpuinfo is read through the table in
artifact_check (features the table does not know then count as not reported).
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def host_features() -> tuple[frozenset | None, str]:
    """(the enabled features, where they came from); (None, why) where neither source answers."""
    try:
        import llvmlite.binding as llvm
        return frozenset(k for k, on in llvm.get_host_cpu_features().items() if on), "LLVM's host feature list"
    except (ImportError, RuntimeError, OSError):
        pass
    from .artifact_check import CPUINFO_FLAG, host_cpu_flags
    flags = host_cpu_flags()
    if flags is None:
        return None, "no feature list on this machine"
    return frozenset(f for f, flag in CPUINFO_FLAG.items() if flag in flags), "/proc/cpuinfo"
