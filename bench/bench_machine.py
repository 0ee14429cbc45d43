"""The line every benchmark prints first: threads, the CPU LLVM targets, its vector features, the load."""
from __future__ import annotations

import os


def machine_line(threads: int) -> str:
    from kcompile.compiler.target import host_target

    target = host_target()
    vector = ",".join(f for f in target.enabled_features if f.startswith("avx"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"threads: {threads}  cpu: {target.cpu}  features: {vector}  load: {load:.1f}"
