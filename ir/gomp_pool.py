"""libgomp's thread pool: what the JIT (compiler/threads.py) and the artifact loader (runtime) bind
where kcompile's own pool (native_pool.py) cannot be built, or with KCOMPILE_THREAD_POOL=gomp. The
spin count below is the native pool's default too.

Generated code launches its parallel regions through a function pointer (compiler/threads.py's
protocol); both callers of native code point it at GOMP_parallel from here. It lives in ir because
the runtime may not import the compiler, and the spin setting must be the same for both.

How long an idle worker spins before it sleeps (GOMP_SPINCOUNT, rounds of a `pause` loop) decides
what a small threaded call costs. Waking a sleeping worker takes a futex call and, on a virtual
machine whose other vCPU has halted, the hypervisor's wakeup: measured on this project's 2-vCPU
Zen 4 VM, about 250-500 us, and the caller then sleeps in the barrier in turn, so every call of a
model called back to back paid it (MNIST MLP at batch 1 with its GEMV on 2 threads: 520 us a call
at 10000 rounds, ~0.25 ms of spin; 14-15 us at 30000 or more). Spinning longer costs on a busy
machine: a waiting thread spins on a core the preempted worker could use (convnet batch 64 on 2
threads at load ~2: 1.7 ms median at 10000 and 30000 rounds, 5.5-5.9 ms at 100000; libgomp's
default, 300000 or ~7.5 ms here, gave 33-65 ms against 5 at load 8). 30000 rounds (~0.75 ms) covers
the gaps between the calls of a busy caller; after that the pool sleeps. On an oversubscribed
machine the thread tuner (thread_tuner.py) finds one thread faster and stops waking the pool. What
would remove the trade-off is a pool whose caller never waits for a worker that has not started
(the tasks are taken from a shared counter already); libgomp's join waits for every team thread.
A user's own GOMP_SPINCOUNT or OMP_WAIT_POLICY wins; it must be set before libgomp loads.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

GOMP_SPINCOUNT = "30000"
# whether GOMP_SPINCOUNT in the environment is our default rather than the user's (native_pool reads it)
spincount_is_ours = False


@functools.lru_cache(maxsize=1)
def gomp_parallel_address() -> int | None:
    """Address of libgomp's GOMP_parallel, or None where libgomp cannot be loaded (single-threaded)."""
    global spincount_is_ours
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
        spincount_is_ours = True
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("gomp") or "libgomp.so.1")
        return ctypes.cast(lib.GOMP_parallel, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None
