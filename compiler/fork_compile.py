"""LLVM on two cores: part of a compile's independent modules built in a forked child process.

llvmlite serializes every call into LLVM behind one process-wide lock (llvmlite.binding.ffi's
_lib_wrapper), so two threads never run LLVM at once; separate modules in separate contexts do not
change that. A forked child has its own copy of LLVM and of the lock: it compiles its share of the
modules (the kernel library's, kernel_library.py) while the parent compiles the rest and the glue,
and sends the object code back through a pipe. LLVM's output does not depend on the process, so the
objects are the same bytes either way (tests/compiler/test_kernel_library.py checks it).

Forking is safe only where no other thread could hold a lock at that moment, so the child is used
only from the main thread of a process whose only other threads are tier_up.py's watchers (which
hold LLVM_LOCK through all their work; fork() takes it), on a machine with several cores, and never where
KCOMPILE_PARALLEL_COMPILE=0. Python counts only its own threads: a process that imported a runtime
known to start native thread pools (JAX's XLA, torch, TensorFlow; JAX warns that fork may deadlock
it) compiles in-process too. Anything that goes wrong in the child (it dies, it raises) costs only
time: the parent compiles that share itself.
"""
from __future__ import annotations

import os
import pickle
import sys
import threading

MIN_JOBS = 4   # below this a fork costs more than it saves
# runtimes whose native thread pools Python's thread count does not see
THREADED_RUNTIMES = ("jax", "jaxlib", "torch", "tensorflow")
# libraries a fork can break outright: an MPI library (loaded with mpi4py.MPI) may have memory pinned
# for its network (InfiniBand, libfabric) that copy-on-write after fork() corrupts in the parent,
# and Open MPI warns on any fork (kc.distribution's data-parallel training imports it)
FORK_UNSAFE = ("mpi4py.MPI",)


def parallel_allowed() -> bool:
    if os.environ.get("KCOMPILE_PARALLEL_COMPILE", "").strip() == "0":
        return False
    if any(name in sys.modules for name in THREADED_RUNTIMES + FORK_UNSAFE):
        return False
    if not hasattr(os, "fork") or (os.cpu_count() or 1) < 2:
        return False
    from .tier_up import watchers     # (their LLVM work holds LLVM_LOCK, which every fork waits for)
    return threading.current_thread() is threading.main_thread() and threading.active_count() - watchers() == 1


def fork() -> int:
    """os.fork() for a compile helper: tier_up's at-fork hooks hold LLVM_LOCK and the watcher list's
    lock across it, so no thread of ours (tier_up's watchers) holds LLVM's state, the caches' locks or
    the watcher list in the child (which parallel_allowed() reads there); the child adopts no tier-0
    engine (it leaves with os._exit)."""
    from .tier_up import own_fork
    with own_fork():       # (tier_up's at-fork hooks take LLVM_LOCK and the watcher list's lock)
        return os.fork()


def compile_all(jobs: list, compile_one, beside=None, parallel: bool | None = None, cost=None,
                beside_cost: float = 0.0, min_child_cost: float | None = None) -> dict:
    """jobs: [(key, payload)]; compile_one(payload) -> bytes. Returns {key: bytes}.

    With `parallel` (default: parallel_allowed()) a forked child takes a share of the jobs while this
    process runs beside() (if given) and the rest; otherwise all run here, after beside(). The shares
    balance cost(payload) (default 1 per job), beside() counting beside_cost on this side; the child
    is not started when its share would cost less than min_child_cost (default: 2 jobs' worth)."""
    parallel = parallel_allowed() if parallel is None else parallel
    cost = cost or (lambda payload: 1.0)
    theirs, ours = _shares(jobs, cost, beside_cost)
    least = MIN_JOBS / 2 if min_child_cost is None else min_child_cost
    if not parallel or not theirs or sum(cost(p) for _, p in theirs) < least:
        if beside is not None:
            beside()
        return {key: compile_one(payload) for key, payload in jobs}
    read_end, write_end = os.pipe()
    pid = fork()
    if pid == 0:   # the child: compile, send, leave without running the parent's exit handlers
        status = 0
        try:
            os.close(read_end)
            data = pickle.dumps({key: compile_one(payload) for key, payload in theirs})
            with os.fdopen(write_end, "wb") as f:
                f.write(data)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        if beside is not None:
            beside()
        out = {key: compile_one(payload) for key, payload in ours}
    finally:
        with os.fdopen(read_end, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
    got = _decode(data) if status == 0 else None
    if got is None or set(got) != {key for key, _ in theirs}:
        got = {key: compile_one(payload) for key, payload in theirs}   # the child failed: do its share
    return out | got


def _shares(jobs: list, cost, beside_cost: float) -> tuple:
    """(the child's jobs, ours): the costliest first, each to the side with less work so far."""
    loads, sides = [0.0, beside_cost], ([], [])
    for job in sorted(jobs, key=lambda j: -cost(j[1])):
        side = 0 if loads[0] <= loads[1] else 1
        sides[side].append(job)
        loads[side] += cost(job[1])
    return sides


def _decode(data: bytes):
    try:
        got = pickle.loads(data)   # our own child's output, through our own pipe
    except Exception:
        return None
    return got if isinstance(got, dict) and all(isinstance(v, bytes) for v in got.values()) else None
