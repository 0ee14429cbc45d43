"""A compile the caller announced ahead, run in a forked child beside this process's current compile.

Keras's `model.compile()` says a train step will follow; the first predict's compile leaves one core
idle through most of its LLVM work (its kernels and glue are a few modules), and the train step's
compile (trace, autodiff, codegen, ~0.45 s of glue LLVM) then runs alone. The front end announces the
train step with `request(job)`; the next JIT compile that reaches its LLVM work (driver.Compilation
.kernel_objects) forks a child that runs job(promised): it builds the train step's graph and compiles
it into the disk cache (jit.precompile), leaving out the library kernels in `promised`, which this
process is about to compile itself (its current compile's kernels), so no kernel is compiled twice.
This process meanwhile compiles its own code without the fork_compile helper (the child has the
second core). Building the train step waits for the child (the front end calls wait(); other compiles
do not); the step is then a disk-cache hit whose kernels are found in this process's memory and on disk. A child that fails, or a guess of the
step that turns out wrong, costs only the child's time: the step compiles as before.

Only where fork_compile allows a fork (single-threaded process, several cores, not turned off with
KCOMPILE_PARALLEL_COMPILE=0), the disk cache is enabled (it carries the result back) and
KCOMPILE_BACKGROUND_COMPILE is not 0. The child is killed at exit if still running (cache entries are
written whole or not at all).
"""
from __future__ import annotations

import atexit
import os
import signal
import time

from .disk_cache import cache_dir
from .fork_compile import parallel_allowed

WAIT_LIMIT_S = 300.0
_pending = None    # job(promised: dict) to run in a child
_child = None      # pid of the running child


def request(job) -> None:
    """Announce a compile: job(promised) runs in a child beside the next JIT compile (replaces any)."""
    global _pending
    _pending = job


def cancel() -> None:
    """The announced compile is asked for now (or no longer wanted): do not start it."""
    global _pending
    _pending = None


def start(promised: dict) -> bool:
    """Fork the announced compile (if any and allowed) beside the caller's, leaving it the kernels in
    `promised` ({key: calls}: the caller compiles them); True if a child runs."""
    global _pending, _child
    job, _pending = _pending, None
    if job is None or _child is not None or not enabled():
        return False
    promised = dict(promised)
    pid = os.fork()
    if pid == 0:   # the child: compile into the disk cache, leave without the parent's exit handlers
        status = 0
        try:
            os.environ["KCOMPILE_PARALLEL_COMPILE"] = "0"   # no helper of its own: two cores, two processes
            job(promised)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    _child = pid
    return True


def enabled() -> bool:
    off = os.environ.get("KCOMPILE_BACKGROUND_COMPILE", "").strip() == "0"
    return not off and cache_dir() is not None and parallel_allowed()


def running() -> bool:
    return _child is not None


def wait(limit_s: float | None = None) -> None:
    """Wait for the child (before the compile it was started for, which will find its result on disk).

    A child still running after limit_s (WAIT_LIMIT_S: far beyond any compile; it could only be stuck)
    is killed: the caller then compiles the step itself."""
    global _child
    pid, _child = _child, None
    if pid is None:
        return
    deadline, pause = time.monotonic() + (WAIT_LIMIT_S if limit_s is None else limit_s), 0.0005
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
            time.sleep(pause)
            pause = min(2 * pause, 0.005)
    except ChildProcessError:
        pass


def _kill_at_exit() -> None:
    global _child
    pid, _child = _child, None
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


atexit.register(_kill_at_exit)
