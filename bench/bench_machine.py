"""The line every benchmark prints first: threads, the CPU LLVM targets, its vector features, the load."""
from __future__ import annotations

import os


def machine_line(threads: int) -> str:
    from kcompile.compiler.target import host_target

    target = host_target()
    vector = ",".join(f for f in target.enabled_features if f.startswith("avx"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"threads: {threads}  cpu: {target.cpu}  features: {vector}  load: {load:.1f}"


def one_thread_header(what: str, features=("avx512f", "avx2", "fma"), threads: str = "one thread") -> str:
    """The sparse benchmarks' first line: one thread (or `threads`), the CPU and the features named, the load, `what`."""
    from kcompile.compiler.target import host_target

    target = host_target()
    feats = ", ".join(f for f in target.enabled_features if f.startswith(tuple(features)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"# {threads}; CPU {target.cpu} ({feats}); load average {load:.2f} on {os.cpu_count()} CPUs; {what}"
