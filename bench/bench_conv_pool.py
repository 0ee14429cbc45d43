"""The float conv + bias + relu + max pool fusion (passes/fuse_conv_pool.py): the book's MNIST convnet
(bench_models.convnet_graph) and its two conv + pool stages alone, each compiled with the default
pipeline (pool fused into the conv's kernel) and with the same pipeline less fuse-conv-pool (conv
kernel, then the pool kernel), on the host's path and the forced AVX2 path; the runners are called
round-robin in bursts (bench_quant.interleaved_medians), one thread by default. Prints medians,
ratios (of the medians and of the best calls: on a loaded host the best call is the steadier figure)
and a `bar:` line per path (the fusion pays: fused faster than unfused on every stage and on
the whole model), plus an `info:` line with the share of the model's time the fusion saved.

    python bench/bench_conv_pool.py [--seconds S] [--threads T] [--batches 64,256]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench_models import convnet_graph   # bench/ is the script's directory
from bench_quant import interleaved_medians
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def stage_graph(hw: int, cin: int, cout: int, seed: int = 0):
    """Conv2D(cout, 3, relu) + MaxPooling2D(2) on [N, hw, hw, cin] (one of the convnet's stages)."""
    from kcompile.ir import GraphBuilder, TensorType
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"conv_pool_{hw}x{cin}_{cout}")
    x = b.input("x", TensorType(["N", hw, hw, cin]))
    w = b.param("kernel", (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32))
    y = b.relu(b.add(b.conv2d(x, w), b.param("bias", rng.standard_normal(cout).astype(np.float32))))
    return b.build([b.max_pool2d(y, pool_size=(2, 2), strides=(2, 2))], ["y"])


def compile_pair(graph, target):
    """(unfused, fused): the default pipeline without and with fuse-conv-pool."""
    from kcompile.compiler.driver import Compilation, CompileOptions, c_symbol, graph_pipeline
    from kcompile.compiler.jit import NativeFunction, compile_graph
    passes = tuple(p for p in graph_pipeline(3, target=target) if p != "fuse-conv-pool")
    unfused = NativeFunction(graph, Compilation({"forward": graph}, c_symbol(graph.name),
                                                CompileOptions(3, target=target, passes=passes), kernel_library=True))
    return unfused, compile_graph(graph, target=target)


def _timed(fn, best: list, i: int):
    """fn, keeping its fastest call in best[i]."""
    def call():
        t0 = time.perf_counter()
        fn()
        best[i] = min(best[i], time.perf_counter() - t0)
    return call


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.5, help="time budget per (path, model, batch)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", default="64,256")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from kcompile.compiler.target import host_target
    rng = np.random.default_rng(0)
    print(f"{args.threads} thread(s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'':<42} {'median':-^30} {'best call':-^31}")
    print(f"  {'path':<5} {'model':<30} {'batch':>5} {'unfused ms':>10} {'fused ms':>9} {'unf/fused':>9} "
          f"{'unfused ms':>10} {'fused ms':>9} {'unf/fused':>9}")
    models = {"convnet": convnet_graph(), "conv 3x3x1->32 + pool": stage_graph(28, 1, 32),
              "conv 3x3x32->64 + pool": stage_graph(13, 32, 64)}
    gains = {}
    for path, target in (("host", None), ("AVX2", host_target().without("avx512f"))):
        for name, graph in models.items():
            fns = compile_pair(graph, target)
            shape = graph.inputs[0].type.shape[1:]
            for batch in (int(b) for b in args.batches.split(",")):
                x = rng.random((batch, *shape), dtype=np.float32)
                got = [f([x], nthreads=args.threads)[0] for f in fns]
                assert np.array_equal(got[0], got[1]), f"{name}: fused and unfused differ"
                best = [float("inf")] * len(fns)
                t = interleaved_medians([_timed(lambda f=f: f([x], nthreads=args.threads), best, i)
                                         for i, f in enumerate(fns)], args.seconds)
                gains.setdefault(path, []).append(t[0] / t[1])
                print(f"  {path:<5} {name:<30} {batch:5} {1e3 * t[0]:10.3f} {1e3 * t[1]:9.3f} {t[0] / t[1]:9.2f} "
                      f"{1e3 * best[0]:10.3f} {1e3 * best[1]:9.3f} {best[0] / best[1]:9.2f}")
                if name == "convnet":
                    print(f"info: {path} convnet batch {batch}: the fusion saves {100 * (1 - best[1] / best[0]):.1f} % "
                          f"of the model's best-call time ({1e6 * (best[0] - best[1]) / batch:.2f} us per image)")
    for path, g in gains.items():
        print(f"bar: {path} path, fused conv + pool faster than unfused (medians) on every stage and the whole convnet "
              f"(min {min(g):.2f}x): {'met' if min(g) > 1.0 else 'NOT met'}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
