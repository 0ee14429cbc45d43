"""Where the convnet's window convolutions (compiler/kernels/window_tile.py) lose against the FMA peak.

For conv2d_1 (13x13x32->64) and conv2d_2 (5x5x64->128), +bias+relu, compiled alone as bench_models.py
compiles them, the same 256 images are run as one batch-256 call and as 4 consecutive batch-64 and
8 batch-32 calls (time summed per round), with the input and the output each either the full
batch-256 buffers (streamed: 13.4 MB for conv2d_1) or one batch-32 slice reused (stays cached).
Rounds interleave the variants. Times are thread CPU time at 1 thread (a preempted call is not
charged for the other process; its cache damage still is), wall time (TSC) at 2. Prints best and
median % of the measured FMA peak, and a `bar:` line per layer: one call at batch 256 >= 95 %.
Then the window tile against the one before it (AVX-512: 6x64 against 12x32, both compiled in this
process, one call at batch 64 and 256, interleaved; their own output buffers): the ratio of medians.

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
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

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
        compare_tiles(graph, x, flops, peak, args, clock)


def compare_tiles(graph, x, flops, peak, args, clock):
    """The wide window tile (window_tile.WIDE_VECTORS) against the 2-vector one, interleaved."""
    from native_loop import one_call_seconds
    from kcompile.compiler import jit
    from kcompile.compiler.kernels import window_tile
    from kcompile.ir.call_plan import aligned_empty
    wide, cache_off = window_tile.WIDE_VECTORS, os.environ.get("KCOMPILE_DISABLE_CACHE")
    plans = {}
    # compile_graph caches by graph text, in this process and on disk (a module constant changed
    # here is not in its key): both off while each tile compiles
    os.environ["KCOMPILE_DISABLE_CACHE"] = "1"
    try:
        for label, vectors in (("2-vector tile", 2), (f"{wide}-vector tile", wide)):
            window_tile.WIDE_VECTORS = vectors
            jit._CACHE.clear()
            plans[label] = jit.compile_graph(graph, opt_level=3).plan(nthreads=args.threads)
    finally:
        window_tile.WIDE_VECTORS = wide
        jit._CACHE.clear()
        if cache_off is None:
            del os.environ["KCOMPILE_DISABLE_CACHE"]
        else:
            os.environ["KCOMPILE_DISABLE_CACHE"] = cache_off
    out_elems = graph.outputs[0].type.shape[1:]
    for batch in (64, 256):
        calls = {}
        for label, plan in plans.items():
            fn, block, (slot, keep) = plan.native_call([x[:batch]])
            y = aligned_empty(batch * int(np.prod(out_elems)) * 4)
            slot.out_ptrs[0] = y.ctypes.data
            calls[label] = (fn, block, y, keep)
        times = {k: [] for k in calls}
        labels = list(calls)
        for r in range(args.rounds * (4 if batch == 64 else 1)):
            for label in labels[r % 2:] + labels[:r % 2]:
                fn, block = calls[label][:2]
                if clock is None:
                    times[label].append(one_call_seconds(fn, block))
                else:
                    t0 = clock()
                    one_call_seconds(fn, block)
                    times[label].append(clock() - t0)
        f = flops * batch / 256
        meds = {k: statistics.median(v) for k, v in times.items()}
        same = np.array_equal(calls[labels[0]][2], calls[labels[1]][2])
        print(f"  batch {batch}: " + ", ".join(
            f"{k} best {f / min(v) / peak.flops(args.threads) * 100:5.1f} % median "
            f"{f / meds[k] / peak.flops(args.threads) * 100:5.1f} %" for k, v in times.items())
            + f"; time {labels[1]} / {labels[0]} (medians) {meds[labels[1]] / meds[labels[0]]:.3f}; bitwise equal: {same}")


if __name__ == "__main__":
    main()
