"""How many threads a native call may use: the default count, its overrides, and a process-wide budget.

Generated kernels split their work only when it pays (each kernel's cost model, compiler/threads.py):
a call is *offered* threads, and a small call uses one whatever it is offered. This module decides
the offer. The default is the machine's cores (the CPUs this process may run on); it is overridden by
`set_num_threads(n)` (kc.set_num_threads), else by $KCOMPILE_NUM_THREADS. Calls in flight at once
(several models, or several Python threads) share the cores: a call is offered at most the cores
that calls already running have not taken, and at least one, so they never oversubscribe the
machine between them. A caller's explicit per-call count (nthreads=) is honored as given, and
counted against the budget. It lives in ir because both the JIT (compiler) and the artifact loader
(runtime) call native code, and neither may import the other.
"""
from __future__ import annotations

import functools
import os
import threading

ENV_VAR = "KCOMPILE_NUM_THREADS"
_override: int | None = None
# os.environ's own table, keyed as it stores them (bytes on POSIX): every native call reads the
# variable, and os.environ.get encodes the key and raises and catches a KeyError when it is unset
# (1.3 us, several times that from the cold caches a long native call leaves); same contents
_ENV_TABLE = getattr(os.environ, "_data", None) if os.name == "posix" else None
_ENV_KEY = os.fsencode(ENV_VAR)


def _env_value() -> str | None:
    """$KCOMPILE_NUM_THREADS as os.environ.get returns it."""
    if _ENV_TABLE is None:
        return os.environ.get(ENV_VAR)
    value = _ENV_TABLE.get(_ENV_KEY)
    return None if value is None else os.fsdecode(value)


@functools.lru_cache(maxsize=1)
def machine_threads() -> int:
    """The CPUs this process may run on (its affinity mask when it starts), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _positive(value, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or (isinstance(value, float) and value != n):
        raise ValueError(f"{what} must be a positive integer number of threads, got {value!r}")
    return n


def set_num_threads(n: int | None) -> None:
    """Threads per native call from now on in this process (None: back to $KCOMPILE_NUM_THREADS or the cores)."""
    global _override
    _override = None if n is None else _positive(n, "set_num_threads(n)")


def get_num_threads() -> int:
    """The threads a call is offered when nothing else runs: set_num_threads, else $KCOMPILE_NUM_THREADS,
    else the machine's cores."""
    if _override is not None:
        return _override
    env = _env_value()
    return _positive(env, f"${ENV_VAR}") if env else machine_threads()


def user_chose_threads() -> bool:
    """Whether set_num_threads or $KCOMPILE_NUM_THREADS chose the count (the fast call path asks on
    every call: no decoding, no validation; get_num_threads() raises for a bad value later)."""
    if _override is not None:
        return True
    return bool(_ENV_TABLE.get(_ENV_KEY) if _ENV_TABLE is not None else os.environ.get(ENV_VAR))


def tunable_offer() -> int | None:
    """The default offer (the cores) where the user chose no count and there is more than one core,
    else None: then nothing is tuned (thread_tuner.py)."""
    if user_chose_threads():
        return None
    n = machine_threads()
    return n if n > 1 else None


class ThreadBudget:
    """The cores taken by native calls in flight in this process (one shared instance: BUDGET)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        return self._busy

    def acquire(self, requested: int | None = None, limit: int | None = None) -> int:
        """Threads for a call about to start: `requested` as given, else the default offer (at most
        `limit`) reduced to the cores that calls in flight have not taken, at least 1. Pair every
        acquire with release(the result)."""
        if requested is not None:
            n = _positive(requested, "nthreads")
            with self._lock:
                self._busy += n
            return n
        want = get_num_threads() if limit is None else limit   # (a tuner's limit is at most the offer)
        with self._lock:
            n = max(1, min(want, machine_threads() - self._busy)) if want > 1 else 1
            self._busy += n
        return n

    def release(self, n: int) -> None:
        with self._lock:
            self._busy -= n


BUDGET = ThreadBudget()
