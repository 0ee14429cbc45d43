"""Recurrent compile time and a dynamic sequence length: first-call predict of LSTM / GRU models.

Each recurrent layer is one `scan` whose body is compiled once, so compile time should not grow
with the number of timesteps (the issue's bar: 400 steps within 1.5x of 20). Runners, interleaved
in one process (the JIT's in-process and on-disk caches are off or cleared before each first call):

  static    Input(shape=(steps, F)): a model per length, compiled for it
  dynamic   Input(shape=(None, F)): one model, one compile for every length (the scan's trip count
            and the T-sized kernels read T at run time)
  per-length  the same dynamic model with kc.config.set_dynamic_lengths("per-length"): the graph
            specialized and compiled once per length it meets (static trip counts)

Prints medians of the first call (trace + passes + codegen + LLVM + run) and of the steady
per-predict time, their ratios, whether one compile served both lengths, a line per bar, the
thread count and the CPU features.

    python bench/bench_recurrent.py [--steps 20,400] [--layers LSTM,GRU] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

os.environ.setdefault("KCOMPILE_DISABLE_CACHE", "1")   # first calls must compile, not read the disk cache


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", default="20,400")
    p.add_argument("--layers", default="LSTM,GRU")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--calls", type=int, default=7, help="steady predicts timed per runner and length")
    return p.parse_args(argv)


class Compiles:
    """Counts the JIT's compilations (one per new graph structure)."""

    def __init__(self):
        from kcompile.compiler import jit
        self.count, original = 0, jit.Compilation
        counter = self

        class Counting(original):
            def __init__(self, *a, **k):
                counter.count += 1
                super().__init__(*a, **k)
        jit.Compilation = Counting


def build(kind: str, steps, args):
    import kcompile as kc
    inp = kc.Input(shape=(steps, args.features))
    model = kc.Model(inp, kc.layers.Dense(1)(getattr(kc.layers, kind)(args.units)(inp)))
    model.compile("sgd", "mse", backend="native")
    return model


def data(steps: int, args) -> np.ndarray:
    return np.random.default_rng(steps).standard_normal((args.batch, steps, args.features)).astype(np.float32)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def first_call(kind: str, steps: int, mode: str, args) -> float:
    """Seconds of a fresh model's first predict at `steps` (compiling)."""
    import kcompile as kc
    from kcompile.compiler import jit
    kc.config.set_dynamic_lengths("per-length" if mode == "per-length" else "once")
    model = build(kind, steps if mode == "static" else None, args)
    jit._CACHE.clear()
    x = data(steps, args)
    return timed(lambda: model.predict(x, verbose=0))


def main(argv=None):
    args = parse_args(argv)
    import kcompile as kc
    from bench_machine import machine_line

    print(machine_line(int(os.environ.get("KCOMPILE_NUM_THREADS", "1"))))
    steps = [int(s) for s in args.steps.split(",")]
    short, long_ = steps[0], steps[-1]
    counter = Compiles()
    bars = []
    for kind in args.layers.split(","):
        first_call(kind, short, "dynamic", args)   # warm imports and the target machine once
        firsts = {(m, t): [] for m in ("static", "dynamic") for t in steps}
        for _ in range(args.repeats):                 # interleaved: every runner in every round
            for t in steps:
                for mode in ("static", "dynamic"):
                    firsts[mode, t].append(first_call(kind, t, mode, args))
        for (mode, t), xs in firsts.items():
            print(f"{kind:5s} {mode:8s} steps={t:4d}: first call {statistics.median(xs):7.3f} s (median of {len(xs)})")
        for mode in ("static", "dynamic"):
            ratio = statistics.median(firsts[mode, long_]) / statistics.median(firsts[mode, short])
            print(f"{kind:5s} {mode:8s} first-call ratio {long_}/{short} steps: {ratio:.2f}x")
            if mode == "dynamic":
                bars.append(f"bar: {kind} first-call compile, {long_} steps within 1.5x of {short}: {ratio:.2f}x "
                            f"{'met' if ratio <= 1.5 else 'NOT met'}")

        # one compile serves both lengths; steady predict time: one compile vs per-length compiles
        kc.config.set_dynamic_lengths("once")
        dynamic = build(kind, None, args)
        before = counter.count
        served = [timed(lambda: dynamic.predict(data(t, args), verbose=0)) for t in steps]
        compiled = counter.count - before
        print(f"{kind:5s} dynamic: first predict at {short} steps {served[0]:.3f} s, then at {long_} steps "
              f"{served[-1]:.3f} s; compilations for both: {compiled}")
        bars.append(f"bar: {kind} one compile serves {short} and {long_} steps: {compiled} compilation(s) "
                    f"{'met' if compiled == 1 else 'NOT met'}")
        kc.config.set_dynamic_lengths("per-length")
        per_length = build(kind, None, args)
        for t in steps:
            per_length.predict(data(t, args), verbose=0)   # compile its length first
        for t in steps:
            x, runs = data(t, args), {"dynamic": [], "per-length": []}
            for _ in range(args.calls):
                runs["dynamic"].append(timed(lambda: dynamic.predict(x, verbose=0)))
                runs["per-length"].append(timed(lambda: per_length.predict(x, verbose=0)))
            d, p = statistics.median(runs["dynamic"]), statistics.median(runs["per-length"])
            bd, bp = min(runs["dynamic"]), min(runs["per-length"])   # the steadier figure on a loaded machine
            print(f"{kind:5s} steps={t:4d}: predict median {1e3 * d:8.2f} ms (one compile) vs {1e3 * p:8.2f} ms "
                  f"(per-length), per-length/one = {p / d:.2f}x; best {1e3 * bd:.2f} vs {1e3 * bp:.2f} ms, "
                  f"{bp / bd:.2f}x")
        kc.config.set_dynamic_lengths("once")
    print("\n".join(bars))


if __name__ == "__main__":
    main()
