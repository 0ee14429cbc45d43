"""ThreadTuner: native calls run with the thread count that helps, found by timing both.

The kernels' cost models decide whether a call's work is large enough to split; whether the other
cores are actually free to take it is only known by trying: on a machine whose other cores are busy,
libgomp's unpinned workers queue behind other jobs and two threads run slower than one (measured
here at load 4.5: a batch-128 MNIST MLP train step 14 ms with 2 threads, 7 ms with 1). So, per batch
size, the tuner times the default offer and one thread in turns (TRIALS calls each, after a warm-up
call), keeps the faster (more threads only when clearly faster: one thread leaves cores to others),
and tries again after RETUNE calls (twice as many after each trial more threads clearly lost), as
the machine's load changes. A count the user chose
(kc.set_num_threads, $KCOMPILE_NUM_THREADS, nthreads=) is never tuned. Every caller of native code
keeps one per compiled function: the JIT's calls and bound steps, and a loaded artifact; it lives
in ir beside the budget for that reason (the runtime may not import the compiler).
"""
from __future__ import annotations

import contextlib
import statistics
import time

from .thread_budget import BUDGET, tunable_offer

TRIALS = 3        # timed calls per candidate in a trial
RETUNE = 500      # calls between trials
MARGIN = 0.95     # more threads must take under 95 % of one thread's time to be kept
# Each trial in which more threads took over LOST_BY times one thread's doubles the calls to the
# next one, up to MAX_BACKOFF times RETUNE: on a loaded machine a trial's threaded calls each wait
# milliseconds for a core (a batch-1 MLP call: ~4 ms against 23 us at load 2.6 on 2 cores), which
# every 500 calls doubled the mean time. A closer loss may be noise (a trial is 3 calls each) and
# keeps the usual interval, so a wrong choice does not stick for thousands of calls.
LOST_BY = 2.0
MAX_BACKOFF = 16


class _Trial:
    """One batch size's state: the calls since the last trial began, and that trial's timings."""

    def __init__(self, offer: int):
        self.offer = offer
        self.calls = 0                # since the current trial began (0: the next call starts one)
        self.interval = RETUNE        # calls from one trial's start to the next
        self.chosen: int | None = None
        self.times: dict = {offer: [], 1: []}

    def next(self) -> int:
        k = self.calls
        if k == 0:   # a trial starts: the first call is a warm-up (allocations, cold caches)
            self.times = {self.offer: [], 1: []}
        if 1 <= k <= 2 * TRIALS:
            return self.offer if k % 2 else 1
        return self.chosen or self.offer

    def record(self, n: int, seconds: float) -> None:
        k = self.calls
        self.calls = (k + 1) % self.interval
        if 1 <= k <= 2 * TRIALS:
            self.times[n].append(seconds)
            if k == 2 * TRIALS:
                many, one = statistics.median(self.times[self.offer]), statistics.median(self.times[1])
                self.chosen = self.offer if many < MARGIN * one else 1
                clear_loss = many > LOST_BY * one
                self.interval = min(2 * self.interval, MAX_BACKOFF * RETUNE) if clear_loss else RETUNE


class ThreadTuner:
    """limit(batch) before a call (None: do not limit), record(batch, limit, seconds) after it."""

    def __init__(self):
        self._trials: dict = {}

    def limit(self, batch: int) -> int | None:
        offer = tunable_offer()
        if offer is None:
            return None
        trial = self._trials.get(batch)
        if trial is None or trial.offer != offer:
            trial = self._trials[batch] = _Trial(offer)
        return trial.next()

    def steady(self, key) -> int | None:
        """The chosen count for a call of `key` between trials, counted as one of its calls; None when
        the call must go through call()/start(): nothing chosen yet, or a trial starts or runs."""
        trial = self._trials.get(key)
        if trial is None or trial.chosen is None:
            return None
        k = trial.calls
        if k <= 2 * TRIALS or k >= trial.interval - 1:
            return None
        trial.calls = k + 1
        return trial.chosen

    def record(self, batch: int, limit: int | None, seconds: float) -> None:
        if limit is not None:
            self._trials[batch].record(limit, seconds)

    @contextlib.contextmanager
    def call(self, key, nthreads: int | None = None):
        """Yield the thread count for one native call: `nthreads` as given, else the default offer
        limited to what this tuner allows for `key`, both taken from the process-wide budget (and
        given back after); the call's time is recorded when it returns without an exception."""
        started = self.start(key, nthreads)
        try:
            yield started[1]
        except BaseException:
            self.finish(key, started, ok=False)
            raise
        self.finish(key, started)

    def start(self, key, nthreads: int | None = None) -> tuple:
        """call()'s first half without a context manager, for a loop that pays for every Python step
        (fit's): returns (limit, thread count, start time) to hand to finish()."""
        limit = None if nthreads else self.limit(key)
        return limit, BUDGET.acquire(nthreads or None, limit), time.perf_counter()

    def run(self, key, nthreads, fn, *args):
        """fn(*args, thread count) with the count call() would yield, recorded as call() records it;
        fn's result (call()'s steps without a generator's cost, for the hot call paths)."""
        started = self.start(key, nthreads)
        try:
            result = fn(*args, started[1])
        except BaseException:
            self.finish(key, started, ok=False)
            raise
        self.finish(key, started)
        return result

    def finish(self, key, started: tuple, ok: bool = True) -> None:
        """Give the threads back; record the time of a call that returned (ok) without an exception."""
        limit, n, t0 = started
        BUDGET.release(n)
        if ok:
            self.record(key, limit, time.perf_counter() - t0)

    def retune(self) -> None:
        """The code changed (compiler/tier_up.py published optimized code, several times faster):
        time the candidates again from the next call of every batch size. A call in flight meanwhile
        records nothing (its trial position reads 0)."""
        for trial in list(self._trials.values()):
            trial.times = {trial.offer: [], 1: []}
            trial.interval = RETUNE
            trial.calls = 0

    def chosen(self, batch: int) -> int | None:
        """The count the last finished trial kept for this batch size (None: no trial finished yet)."""
        trial = self._trials.get(batch)
        return None if trial is None else trial.chosen
