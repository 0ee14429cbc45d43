"""The fused conv + pool first stage (28x28x1 -> 32, 3x3, 2x2 pool: kernels/conv_pool.py's direct form)
against the unfused pair with the output at a chosen offset from a page (0, 16, 32, 48 bytes: numpy puts
a large array 16 bytes past a page, a reused heap block anywhere 16-byte aligned, so the offset varies
from process to process). The native entry is called on buffers placed here, one thread, round-robin
over every (runner, offset), each timed in thread CPU time; prints medians, ratios and a `bar:` line per
path (fused faster than unfused at every offset). The fused kernel once max-ed each conv pixel into the
output as it went (load, max, store per pixel): at 16 or 48 bytes off, the next pixel's load missed
store-to-load forwarding on AVX-512 and the stage ran 18 % slower (0.41 against 0.35 ms, Zen 4).

    python bench/bench_conv_pool_align.py [--seconds S] [--batch 64] [--offsets 0,16,32,48]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from bench_conv_pool import compile_pair, stage_graph   # bench/ is the script's directory
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def placed(shape, offset: int) -> np.ndarray:
    """An empty float32 array starting `offset` bytes past a page boundary."""
    nbytes = int(np.prod(shape)) * 4
    raw = np.empty(nbytes + 2 * 4096, np.uint8)
    start = (-raw.ctypes.data) % 4096 + offset
    return raw[start:start + nbytes].view(np.float32).reshape(shape)


def raw_call(fn, x, out, batch: int):
    """fn's native entry on x -> out, one thread, no allocation per call (the bench times the kernel)."""
    from kcompile.compiler.jit import _pointers, aligned_empty
    ws = aligned_empty(fn.workspace_bytes(batch, {}))
    ptrs = _pointers([x]), _pointers([out]), _pointers(fn._param_arrays(None))
    return lambda: fn._fn(*ptrs, ws.ctypes.data, batch, 1)


def thread_medians(runs: dict, seconds: float, burst: int = 5) -> dict:
    """Median thread-CPU seconds per call, round-robin in bursts (the first call of a burst not counted)."""
    times = {name: [] for name in runs}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or min(len(t) for t in times.values()) < 7:
        for name, run in runs.items():
            run()
            for _ in range(burst - 1):
                t0 = time.thread_time_ns()
                run()
                times[name].append(time.thread_time_ns() - t0)
    return {name: 1e-9 * statistics.median(t) for name, t in times.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="time budget per path")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--offsets", default="0,16,32,48")
    args = p.parse_args(argv)
    from kcompile.compiler.target import host_target
    graph, batch = stage_graph(28, 1, 32), args.batch
    offsets = [int(o) for o in args.offsets.split(",")]
    x = placed((batch, 28, 28, 1), 0)
    x[...] = np.random.default_rng(0).random(x.shape, dtype=np.float32)
    print(f"1 thread; batch {batch}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'path':<5} {'offset':>6} {'unfused ms':>10} {'fused ms':>9} {'unf/fused':>9}")
    for path, target in (("host", None), ("AVX2", host_target().without("avx512f"))):
        unfused, fused = compile_pair(graph, target)
        want = unfused([x], nthreads=1)[0]
        runs, outs = {}, []
        for off in offsets:
            for name, fn in (("unfused", unfused), ("fused", fused)):
                out = placed(want.shape, off)
                runs[name, off] = raw_call(fn, x, out, batch)
                runs[name, off]()
                assert np.array_equal(out, want), f"{path} {name} at offset {off} differs from the unfused graph"
                outs.append(out)
        t = thread_medians(runs, args.seconds)
        ratios = [t["unfused", off] / t["fused", off] for off in offsets]
        for off, r in zip(offsets, ratios):
            print(f"  {path:<5} {off:6} {1e3 * t['unfused', off]:10.3f} {1e3 * t['fused', off]:9.3f} {r:9.2f}")
        print(f"bar: {path} path, fused faster than unfused at every output offset (min {min(ratios):.2f}x, "
              f"fused spread {max(t['fused', o] for o in offsets) / min(t['fused', o] for o in offsets):.2f}x): "
              f"{'met' if min(ratios) > 1.0 else 'NOT met'}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
