"""Recurrent compile time: first-call predict of an LSTM / GRU model over short and long sequences.

Each recurrent layer is one `scan` whose body is compiled once, so compile time should not grow
with the number of timesteps (the issue's bar: 400 steps within 1.5x of 20). Prints the median
first-call time (trace + passes + codegen + LLVM + run; the JIT cache cleared before each), the
steady per-call time, their ratios, the thread count and the CPU features.

    python bench/bench_recurrent.py [--steps 20,400] [--layers LSTM,GRU] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", default="20,400")
    p.add_argument("--layers", default="LSTM,GRU")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args(argv)


def first_call(kind: str, steps: int, args) -> tuple[float, float]:
    import kcompile as kc
    from kcompile.compiler import jit

    inp = kc.Input(shape=(steps, args.features))
    model = kc.Model(inp, kc.layers.Dense(1)(getattr(kc.layers, kind)(args.units)(inp)))
    x = np.random.default_rng(0).standard_normal((args.batch, steps, args.features)).astype(np.float32)
    jit._CACHE.clear()
    t0 = time.perf_counter()
    model.predict(x, verbose=0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.predict(x, verbose=0)
    return first, time.perf_counter() - t0


def main(argv=None):
    args = parse_args(argv)
    from kcompile.compiler.target import host_target

    target = host_target()
    print(f"threads: {os.environ.get('KCOMPILE_NUM_THREADS', '1')}  cpu: {target.cpu}  "
          f"features: {','.join(f for f in target.enabled_features if f.startswith('avx'))}")
    steps = [int(s) for s in args.steps.split(",")]
    for kind in args.layers.split(","):
        first_call(kind, steps[0], args)  # warm imports and the target machine once
        rows = {}
        for t in steps:
            runs = [first_call(kind, t, args) for _ in range(args.repeats)]
            rows[t] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
            print(f"{kind:5s} units={args.units} batch={args.batch} steps={t:4d}: first call {rows[t][0]:7.3f} s, "
                  f"then {1e3 * rows[t][1]:8.2f} ms per predict")
        base = rows[steps[0]][0]
        for t in steps[1:]:
            print(f"{kind:5s} first-call ratio {t}/{steps[0]} steps: {rows[t][0] / base:.2f}x")


if __name__ == "__main__":
    main()
