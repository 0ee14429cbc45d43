"""A compile the caller announced ahead, run in a forked child beside this process's current compile.

Keras's `model.compile()` says a train step will follow; the first predict's compile leaves one core
idle through most of its LLVM work (its kernels and glue are a few modules), and the train step's
compile (trace, autodiff, codegen, ~0.45 s of glue LLVM) then runs alone. The front end announces the
train step with `request(job)`; the next JIT compile that reaches its LLVM work (driver.Compilation
.kernel_objects) forks a child that runs job(promised): it builds the train step's graph and compiles
it into the disk cache (jit.precompile), leaving out the library kernels in `promised`, which this
process is about to compile itself (its current compile's kernels), so no kernel is compiled twice.
This process meanwhile compiles its own code without the fork_compile helper (the child has the
second core). The child, whose work is the longer (a train step's glue is larger than a forward
pass's), hands a share of its kernels and glue parts back (Handoff: balanced against the parent's
work left at the fork, written to a private file), which the parent compiles in wait(), once its own
is done. Building the train step waits for the child (the front end calls wait(); other compiles do
not); the step is then a disk-cache hit whose kernels are found in this process's memory and on disk.
A child that fails, or a guess of the step that turns out wrong, costs only the child's time: the
step compiles as before.

Only where fork_compile allows a fork (single-threaded process, several cores, not turned off with
KCOMPILE_PARALLEL_COMPILE=0), a core is idle (spare_core), the disk cache is enabled (it
carries the result back) and KCOMPILE_BACKGROUND_COMPILE=1 asks for it (opt-in: see enabled()). The child is killed at exit if still running (cache entries are
written whole or not at all).
"""
from __future__ import annotations

import atexit
import os
import pickle
import select
import signal
import tempfile
import time

from .disk_cache import cache_dir
from .fork_compile import fork, parallel_allowed

WAIT_LIMIT_S = 300.0
SECONDS_PER_COST = 7e-5   # fork_compile's cost unit: ~0.07 ms of LLVM (an O3 kernel's IR instruction)
_pending = None    # job(promised: dict) to run in a child
_child = None      # (pid, read end of its pipe, its handoff file) of the running child
child_handoff = None   # in the child: its Handoff (driver.Compilation.store gives it to the KernelSet)


def request(job) -> None:
    """Announce a compile: job(promised) runs in a child beside the next JIT compile (replaces any)."""
    global _pending
    _pending = job


def cancel() -> None:
    """The announced compile is asked for now (or no longer wanted): do not start it."""
    global _pending
    _pending = None


def start(promised: dict, our_cost: float = 0.0) -> bool:
    """Fork the announced compile (if any and allowed) beside the caller's, leaving it the kernels in
    `promised` ({key: calls}: the caller compiles them); True if a child runs. our_cost: the caller's
    LLVM work left (fork_compile's units), against which the child balances what it hands back."""
    global _pending, _child, child_handoff
    job, _pending = _pending, None
    if job is None or _child is not None or not enabled():
        return False
    promised = dict(promised)
    try:
        fd, path = tempfile.mkstemp(prefix="kcompile-handoff-", suffix=".pickle")
        os.close(fd)
        read_end, write_end = os.pipe()
        pid = fork()
    except OSError:     # no memory or no process left for a child: compile as if it were not allowed
        return False
    if pid == 0:   # the child: compile into the disk cache, leave without the parent's exit handlers
        status = 0
        try:
            os.close(read_end)
            os.environ["KCOMPILE_PARALLEL_COMPILE"] = "0"   # no helper of its own: two cores, two processes
            child_handoff = Handoff(write_end, path, our_cost)
            job(promised)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    _child = (pid, read_end, path)
    return True


class Handoff:
    """In the child: the share of its kernels and glue parts the parent compiles once it is free (in
    wait(), before the train step it waits for), balanced against the parent's work left at the fork."""

    def __init__(self, fd: int, path: str, parent_cost: float):
        self.fd, self.path, self.parent_cost, self.forked = fd, path, parent_cost, time.monotonic()

    def __call__(self, jobs: list, cost, our_cost: float, describe, target) -> list:
        """jobs [(key, payload)]: the ones this process keeps; the others are written for the parent."""
        if self.fd is None:          # handed once (the child's one compile)
            return jobs
        parent_left = max(0.0, self.parent_cost - (time.monotonic() - self.forked) / SECONDS_PER_COST)
        loads, sides = [our_cost, parent_left], ([], [])
        for job in sorted(jobs, key=lambda j: -cost(j[1])):
            side = 0 if loads[0] <= loads[1] else 1
            sides[side].append(job)
            loads[side] += cost(job[1])
        try:
            if sides[1]:
                with open(self.path, "wb") as f:
                    pickle.dump((target, [describe(key, payload) for key, payload in sides[1]]), f)
                os.write(self.fd, b"1")
        finally:
            os.close(self.fd)       # the parent reads up to here
            self.fd = None
        return sides[0]


def _compile_handed(read_end: int, path: str, deadline: float) -> None:
    """In the parent: compile and keep what the child handed back (nothing if it wrote nothing)."""
    from .disk_cache import DiskCache
    from .kernel_library import compile_handed
    got = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(read_end, 64) if ready else b""
        if not chunk:
            break
        got += chunk
    if not got:
        return
    try:
        with open(path, "rb") as f:
            target, jobs = pickle.load(f)   # our own child's, through our own pipe and private file
        compile_handed(target, jobs, DiskCache.from_environment())
    except Exception:
        pass     # what is missing is compiled with the step (its cache entry does not load)


def _release(fd: int, path: str) -> None:
    """Close the pipe's read end and remove the handoff file (either may be gone already)."""
    for undo, arg in ((os.close, fd), (os.unlink, path)):
        try:
            undo(arg)
        except OSError:
            pass


def enabled() -> bool:
    """Opt-in (KCOMPILE_BACKGROUND_COMPILE=1): measured on a quiet 2-core host it took a cold MLP's
    compile() + first predict + train step from 1.06 to 0.94 s but the convnet's from 1.70 to 1.96 s
    (its train step's work outweighs the forward pass's, more than the handoff balances)."""
    return asked_for() and cache_dir() is not None and parallel_allowed() and spare_core()


def asked_for() -> bool:
    return os.environ.get("KCOMPILE_BACKGROUND_COMPILE", "").strip() == "1"


def spare_core() -> bool:
    """Whether a core is idle beside this process now (Linux: the runnable tasks, this one included,
    fewer than the cores; elsewhere the 1-minute load average). On a busy machine the child only
    competes with this process and the fork_compile helper it gives up: a cold MLP's compile + first
    predict + train step took 2.58 s with it against 2.36 s without at load 2-5 (0.9 against 1.3 s at
    load 1.7)."""
    cores = os.cpu_count() or 1
    runnable = _runnable()
    if runnable is not None:
        return runnable < cores
    try:
        return os.getloadavg()[0] < cores - 0.5
    except OSError:
        return False


def _runnable() -> int | None:
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def running() -> bool:
    return _child is not None


def wait(limit_s: float | None = None) -> None:
    """Wait for the child (before the compile it was started for, which will find its result on disk).

    A child still running after limit_s (WAIT_LIMIT_S: far beyond any compile; it could only be stuck)
    is killed: the caller then compiles the step itself; so is a child whose wait is interrupted."""
    global _child
    running, _child = _child, None
    if running is None:
        return
    pid, read_end, path = running
    deadline, pause = time.monotonic() + (WAIT_LIMIT_S if limit_s is None else limit_s), 0.0005
    try:
        _compile_handed(read_end, path, deadline)
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                _kill(pid)
                break
            time.sleep(pause)
            pause = min(2 * pause, 0.005)
    except ChildProcessError:
        pass
    except BaseException:
        _kill(pid)
        raise
    finally:
        _release(read_end, path)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _kill_at_exit() -> None:
    global _child
    running, _child = _child, None
    if running is not None:
        pid, read_end, path = running
        _kill(pid)
        _release(read_end, path)


atexit.register(_kill_at_exit)
