"""Compile an llvmlite module of kernels in-process (MCJIT, O3): for kernel tests and benchmarks.

A thin caller of codelib.CodeLibrary (the one parse/verify/optimize/JIT lifecycle); it adds only a
choice of CPU, so tests can run the kernels' narrower vector paths on a wider host.
"""
from __future__ import annotations

from ..codelib import CodeLibrary
from ..target import host_target, target_for
from ..threads import bind_thread_launcher


def host_features() -> str:
    """The host CPU's LLVM feature string ("+avx2,+fma,-avx512f,...")."""
    return host_target().features


class JitModule:
    """A finalized module; `address(name)` gives a function's address for ctypes."""

    def __init__(self, module_ir, opt_level: int = 3, cpu: str | None = None, features: str | None = None):
        """cpu/features default to the host's; an older CPU (e.g. "x86-64-v3", "+avx2,-avx512f") runs here
        too, which tests the kernels' other vector widths."""
        self.library = CodeLibrary(module_ir.name, str(module_ir), target_for(cpu, features), opt_level)
        self.engine = self.library.jit()
        bind_thread_launcher(self.global_address)

    def address(self, name: str) -> int:
        return self.engine.address(name)

    def global_address(self, name: str) -> int:
        return self.engine.global_address(name)

    def asm(self) -> str:
        return self.library.emit_assembly()


def call(jit: JitModule, fn_name: str, arrays, batch: int, nthreads: int = 1):
    """Call a kernel `void f(T* ..., i64 batch, i64 nthreads)` on contiguous NumPy arrays."""
    import ctypes
    import numpy as np
    for a in arrays:
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
            raise ValueError(f"{fn_name}: kernel arguments must be C-contiguous arrays")
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arrays)), ctypes.c_int64, ctypes.c_int64)
    proto(jit.address(fn_name))(*[a.ctypes.data for a in arrays], batch, nthreads)
