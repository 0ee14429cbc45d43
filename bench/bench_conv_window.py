"""Where the convnet's window convolutions (compiler/kernels/window_tile.py) lose against the FMA peak.

For conv2d_1 (13x13x32->64) and conv2d_2 (5x5x64->128), +bias+relu, compiled alone as bench_models.py
compiles them, the same 256 images are run as one batch-256 call and as 4 consecutive batch-64 and
8 batch-32 calls (time summed per round), with the input and the output each either the full
batch-256 buffers (streamed: 13.4 MB for conv2d_1) or one batch-32 slice reused (stays cached).
Rounds interleave the variants. Times are thread CPU time at 1 thread (a preempted call is not
charged for the other process; its cache damage still is), wall time (TSC) at 2. Prints best and
median % of the measured FMA peak, and a `bar:` line per layer: one call at batch 256 >= 95 %.

  python bench/bench_conv_window.py [--threads 1|2] [--rounds 30]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

LAYERS = {"conv2d_1 13x13x32->64": (13, 32, 64), "conv2d_2 5x5x64->128": (5, 64, 128)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args(argv)
    os.environ["KCOMPILE_NUM_THREADS"] = str(args.threads)
    from bench_models import _layer_graph
    from fma_peak import measure as measure_peak
    from native_loop import one_call_seconds
    from kcompile.compiler.jit import compile_graph
    peak = measure_peak()
    print(f"FMA peak: {peak.describe()}; {args.threads} thread(s); load average {os.getloadavg()[0]:.1f}")
    clock = time.thread_time if args.threads == 1 else None
    for name, (hw, cin, cout) in LAYERS.items():
        graph = _layer_graph("conv", (hw, cin, cout))
        plan = compile_graph(graph).plan(nthreads=args.threads)
        rng = np.random.default_rng(0)
        x = rng.random((256, hw, hw, cin), dtype=np.float32)
        y = np.ones((256, hw - 2, hw - 2, cout), np.float32)
        flops = 2 * (hw - 2) ** 2 * 9 * cin * cout * 256
        slots = {}
        for batch in (32, 64, 256):   # one argument block per batch size; pointers swapped per call
            fn, block, (slot, keep) = plan.native_call([x[:batch]])
            slots[batch] = (fn, block, slot)

        def run(batch, x_streamed, y_streamed):
            fn, block, slot = slots[batch]
            total = 0.0
            for i in range(256 // batch):
                slot.in_ptrs[0] = x[i * batch * x_streamed:].ctypes.data
                slot.out_ptrs[0] = y[i * batch * y_streamed:].ctypes.data
                if clock is None:
                    total += one_call_seconds(fn, block)
                else:
                    t0 = clock()
                    one_call_seconds(fn, block)
                    total += clock() - t0
            return total

        variants = {"1 x batch 256, streamed": (256, 1, 1), "4 x batch 64, streamed": (64, 1, 1),
                    "8 x batch 32, streamed": (32, 1, 1), "8 x batch 32, input cached": (32, 0, 1),
                    "8 x batch 32, output cached": (32, 1, 0), "8 x batch 32, both cached": (32, 0, 0)}
        times = {k: [] for k in variants}
        for _ in range(args.rounds):
            for k, v in variants.items():
                times[k].append(run(*v))
        print(f"\n{name}, 256 images per round, {args.rounds} rounds:")
        for k, ts in times.items():
            best, med = (flops / t / peak.flops(args.threads) * 100 for t in (min(ts), statistics.median(ts)))
            print(f"  {k:30} best {best:5.1f} %  median {med:5.1f} % of peak")
        best = flops / min(times["1 x batch 256, streamed"]) / peak.flops(args.threads) * 100
        print(f"bar: {name} batch 256, {args.threads} thread(s), one call: {best:.1f} % of FMA peak (best) "
              f">= 95 % {'met' if best >= 95 else 'NOT met'}")


if __name__ == "__main__":
    main()
