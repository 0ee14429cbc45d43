"""libgomp's thread pool, as the JIT (compiler/threads.py) and the artifact loader (runtime) bind it.

Generated code launches its parallel regions through a function pointer (compiler/threads.py's
protocol); both callers of native code point it at GOMP_parallel from here. It lives in ir because
the runtime may not import the compiler, and the spin setting must be the same for both.

How long an idle worker spins before it sleeps (GOMP_SPINCOUNT, rounds of a `pause` loop) decides
what a small threaded call costs. Waking a sleeping worker takes a futex call and, on a virtual
machine whose other vCPU has halted, the hypervisor's wakeup: measured on this project's 2-vCPU
Zen 4 VM, about 250-500 us, and the caller then sleeps in the barrier in turn, so every call of a
model called back to back paid it (MNIST MLP at batch 1 with its GEMV on 2 threads: 520 us a call
at 10000 rounds, ~0.25 ms of spin; 14 us at 100000). libgomp's default (300000, ~7.5 ms here) made
spinning workers steal cores on a busy machine (a batch-64 convnet 33-65 ms against 5); 100000
(~2.5 ms) covers the gaps between the calls of a busy caller, and after that the pool sleeps. On
an oversubscribed machine the thread tuner (thread_tuner.py) finds one thread faster and stops
waking the pool. A user's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins; it must be set before
libgomp loads.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

GOMP_SPINCOUNT = "100000"


@functools.lru_cache(maxsize=1)
def gomp_parallel_address() -> int | None:
    """Address of libgomp's GOMP_parallel, or None where libgomp cannot be loaded (single-threaded)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("gomp") or "libgomp.so.1")
        return ctypes.cast(lib.GOMP_parallel, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
