"""Prepacked f32 dense weights (passes/f32_prepack.py) against the GEMM reading them where they lie.

The book's MNIST MLP (784-512-10) compiled twice in one process, with the default pipeline and with
it less `prepack-f32`, and onnxruntime on the same weights; the native entries are timed one call
at a time inside native code (bench/native_loop.py; onnxruntime through its Python call), the
runners taking turns in a random order each round, with warm caches and with a 64 MB sweep
between calls (cold caches: what a call meets after other work, e.g. another model's). Prints
medians, best calls, each variant's time over the unpacked one's and a `bar:` line per batch
(prepacked no slower than unpacked, cold caches).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import os
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

sys.path.insert(0, str(Path(__file__).parent))
from bench_machine import one_thread_header  # noqa: E402
from bench_models import mlp_graph, onnxruntime_runner, pin_threads  # noqa: E402
from native_loop import one_call_seconds  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="8,64,256")
    p.add_argument("--seconds", type=float, default=3.0, help="time budget per (batch, cache state)")
    return p.parse_args(argv)


def compiled(prepack: bool):
    """The MLP's prepared native call, with or without prepack-f32 in the pipeline."""
    from kcompile.compiler.driver import Compilation, CompileOptions, graph_pipeline
    from kcompile.compiler.jit import NativeFunction
    graph = mlp_graph()
    passes = tuple(p for p in graph_pipeline(3) if prepack or not p.startswith("prepack-f32"))
    fn = NativeFunction(graph, Compilation({"forward": graph}, f"mlp_{int(prepack)}", CompileOptions(passes=passes)))
    return fn.plan(nthreads=1)


def run(batches, seconds: float) -> dict:
    plans = {"prepacked": compiled(True), "unpacked": compiled(False)}
    ort = onnxruntime_runner(mlp_graph(), 1)
    sweep = np.zeros(16 << 20, np.float32)   # 64 MB: past this host's L3 share
    rows = {}
    for batch in batches:
        x = np.random.default_rng(0).random((batch, 784), dtype=np.float32)
        calls = {name: plan.native_call([x]) for name, plan in plans.items()}
        for cold in (False, True):
            samples = {name: [] for name in [*calls, "onnxruntime"]}
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                for name in random.sample(list(samples), len(samples)):
                    if cold:
                        sweep += 1.0
                    if name == "onnxruntime":
                        t0 = time.perf_counter()
                        ort(x)
                        samples[name].append(time.perf_counter() - t0)
                    else:
                        fn, args, _ = calls[name]
                        samples[name].append(one_call_seconds(fn, args))
            rows[batch, cold] = {n: (statistics.median(s), min(s)) for n, s in samples.items()}
    return rows


def main(argv=None):
    args = parse_args(argv)
    pin_threads(1)
    print(one_thread_header("the MNIST MLP, native entries timed in native code, onnxruntime through Python"))
    rows = run([int(b) for b in args.batches.split(",")], args.seconds)
    print(f"{'batch':>5} {'caches':6} {'runner':12} {'median us':>10} {'best us':>9} {'t / t_unpacked':>15}")
    for (batch, cold), r in rows.items():
        base = r["unpacked"][0]
        for name, (med, best) in r.items():
            print(f"{batch:5} {'cold' if cold else 'warm':6} {name:12} {med * 1e6:10.1f} {best * 1e6:9.1f} "
                  f"{med / base:15.2f}")
    print("(onnxruntime's figures include its Python call, about 3-5 us)")
    for (batch, cold), r in rows.items():
        if cold:
            ratio = r["prepacked"][0] / r["unpacked"][0]
            print(f"bar: mlp batch {batch}, cold caches, 1 thread: prepacked / unpacked time {ratio:.2f} <= 1.0 "
                  f"{'met' if ratio <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
