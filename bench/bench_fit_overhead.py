"""fit's per-step overhead outside native code: the book's MNIST MLP (784-512 relu-10 softmax, rmsprop,
sparse categorical crossentropy, accuracy) at batch 128.

A callback stamps the start of every training batch, so a step is everything fit does between two
batches (slicing the batch, feeding it, the native call, metrics, logs, callbacks); the native call
is timed around the compiled train step's ctypes call. Prints the median step, the median native
call and the overhead (step - native) as a share of the step, with the thread count and the CPU,
by the wall clock and by this thread's CPU time (which a busy shared machine disturbs less: time
spent descheduled is not counted).

    python bench/bench_fit_overhead.py [--steps 200] [--batch 128] [--threads 0] [--verbose 0]

--threads 0 (the default) leaves fit its default: the machine's cores offered, and per batch size the
thread count that helps (ir/thread_tuner.py); a positive count is forced (KCOMPILE_NUM_THREADS).
The last line is the bar of issue #8 (overhead <= 5 % of the step, by this thread's CPU time).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="timed training steps (after one warm-up epoch)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="threads per native call (0: fit's default, tuned)")
    p.add_argument("--verbose", type=int, default=0, help="fit's verbose (1: with the progress bar)")
    p.add_argument("--no-shuffle", action="store_true", help="contiguous batches (no gather per step)")
    p.add_argument("--stub-native", action="store_true",
                   help="replace the native call by a no-op: fit's Python cost alone, with warm caches")
    return p.parse_args(argv)


def mnist_mlp():
    import kcompile as kc
    from kcompile import layers
    model = kc.Sequential([layers.Input(shape=(784,)), layers.Dense(512, activation="relu"),
                           layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class StepClock:
    """Callback stamping each training batch's start (a step ends where the next one starts)."""

    def __init__(self):
        from kcompile.frontend.training.callback_base import Callback
        clock = self

        class _Stamp(Callback):
            def on_train_batch_begin(self, batch, logs=None):
                clock.starts.append(stamp())

            def on_train_end(self, logs=None):
                clock.starts.append(stamp())
        self.starts: list = []
        self.callback = _Stamp()

    def steps(self) -> list:
        """(wall, cpu) seconds of each step."""
        return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.starts, self.starts[1:])]


def stamp() -> tuple:
    return time.perf_counter(), time.thread_time()


def time_native_calls(model, stub=False):
    """Wrap the compiled train step's ctypes entries so each call's duration is recorded: the entry
    taking the batch's arrays (six arguments, or one packed block), and the one that first gathers a
    shuffled batch's rows from the whole arrays itself (compiler/gather_entry.py; stubbed, nothing
    gathers)."""
    (runner,) = [r for key, r in model._compiled.step_cache.items() if key[0] == "train"]
    fn, calls = runner.execute, []

    def timer(real):
        def timed(*args):
            t0 = stamp()
            status = real(*args)
            t1 = stamp()
            calls.append((t1[0] - t0[0], t1[1] - t0[1]))
            return status
        return timed
    for attr in ("_fn", "_packed_fn", "_gathered_fn"):
        if getattr(fn, attr, None) is not None:
            setattr(fn, attr, timer((lambda *args: 0) if stub else getattr(fn, attr)))
    return calls


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        os.environ["KCOMPILE_NUM_THREADS"] = str(args.threads)
    from kcompile.compiler.target import host_target
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model = mnist_mlp()
    model.fit(x[:args.batch * 4], y[:args.batch * 4], batch_size=args.batch, epochs=1, verbose=0)  # compile, warm
    calls = time_native_calls(model, args.stub_native)
    clock = StepClock()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=args.verbose, shuffle=not args.no_shuffle,
              callbacks=[clock.callback])
    steps = clock.steps()
    assert len(steps) == len(calls) == args.steps, (len(steps), len(calls))
    target = host_target()
    avx = [f for f in target.enabled_features if f.startswith("avx512") or f in ("avx2", "fma")]
    (runner,) = [r for key, r in model._compiled.step_cache.items() if key[0] == "train"]
    tuned = runner._tuner.chosen(args.batch) if runner._tuner is not None else None
    threads = args.threads or (f"default: {tuned} kept by the tuner" if tuned else "default")
    print(f"MNIST MLP fit, batch {args.batch}, {args.steps} steps, threads {threads}, "
          f"verbose={args.verbose}, shuffle={not args.no_shuffle}{', native call stubbed' if args.stub_native else ''}; CPU {target.cpu} ({', '.join(avx)}); "
          f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    shares = {}
    for k, clock_name in enumerate(("wall clock", "thread CPU time")):
        step_t = [s[k] for s in steps]
        native_t = [c[k] for c in calls]
        outside = [s - c for s, c in zip(step_t, native_t)]
        share = shares[clock_name] = statistics.median([o / s for o, s in zip(outside, step_t)])
        print(f"  {clock_name}: step {1e3 * statistics.median(step_t):.3f} ms, native call "
              f"{1e3 * statistics.median(native_t):.3f} ms, outside native {1e6 * statistics.median(outside):.0f} us"
              f" = {100 * share:.2f} % of the step (medians; target <= 5 %)")
    cpu = shares["thread CPU time"]
    print(f"bar: fit overhead outside native <= 5 % of the step (thread CPU time): {100 * cpu:.2f} % "
          f"{'met' if cpu <= 0.05 else 'NOT met'}")

if __name__ == "__main__":
    main()
