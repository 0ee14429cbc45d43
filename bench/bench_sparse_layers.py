"""Sparse cost model check: one layer at a time, dense against forced sparse, measured and predicted.

Each case is a single pruned layer (a Dense, or a Conv2D + bias + relu with or without the 2x2 max
pool the dense path fuses into the convolution), compiled twice as an artifact in this process:
dense (--sparse never) and sparse (--sparse always), for the host target and, with --avx2, for the
host less AVX-512 (the forced narrow path the tests use). The native entry points run round-robin
(bench_sparse_int8.interleaved); the script prints the median per-round speedup (dense time /
sparse time) beside the cost model's estimate (passes/sparse_cost.py, via the sparsify pass) and
what auto chose. These are the measurements the model's constants were fitted to; the `bar:` lines
check that auto's choice is never the measurably slower kernel (a sparse pick must measure >= 1.0x
within 10 % noise, a dense pick must not leave a measured >= 1.3x behind).

    python bench/bench_sparse_layers.py [--seconds S] [--batches 1,64] [--avx2] [--int8] [--only NAME]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

sys.path.insert(0, str(Path(__file__).parent))
from bench_sparse import NativeCall  # noqa: E402
from bench_sparse_int8 import best_ratio, int8_graph, interleaved, ratio  # noqa: E402

# name: (input shape per example, kernel shape (KH, KW, CIN, COUT) or (K, N), pool, sparsity)
CASES = {
    "conv1_pool": ((28, 28, 1), (3, 3, 1, 32), True, 0.9),
    "conv2_pool": ((13, 13, 32), (3, 3, 32, 64), True, 0.9),
    "conv2": ((13, 13, 32), (3, 3, 32, 64), False, 0.9),
    "conv2_pool_s95": ((13, 13, 32), (3, 3, 32, 64), True, 0.95),
    "conv3": ((5, 5, 64), (3, 3, 64, 128), False, 0.9),
    "conv3_s80": ((5, 5, 64), (3, 3, 64, 128), False, 0.8),
    "conv3_s97": ((5, 5, 64), (3, 3, 64, 128), False, 0.97),
    "dense_1152x10": ((1152,), (1152, 10), False, 0.9),
    "dense_784x512": ((784,), (784, 512), False, 0.9),
    # the convolutions' matrices alone (one row per output position): the kernel without the patch copy
    "rows_288x64": ((121, 288), (288, 64), False, 0.9),
    "rows_576x128": ((9, 576), (576, 128), False, 0.9),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per case and batch size")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--avx2", action="store_true", help="compile for the host less AVX-512")
    p.add_argument("--int8", action="store_true", help="quantize first (sparse int8 against dense int8)")
    p.add_argument("--only", default="", help="comma-separated case names")
    return p.parse_args(argv)


def layer_graph(name: str, shape, kshape, pool: bool, sparsity: float, seed: int = 0):
    from kcompile.ir import GraphBuilder, TensorType
    rng = np.random.default_rng(seed)
    w = (rng.normal(size=kshape) / np.sqrt(np.prod(kshape[:-1]))).astype(np.float32)
    w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", *shape]))
    with b.location(name):
        k, bias = b.param(f"{name}/kernel", w), b.param(f"{name}/bias", np.full(kshape[-1], 0.01, np.float32))
        h = b.relu(b.add(b.conv2d(x, k) if len(kshape) == 4 else b.matmul(x, k), bias))
        if pool:
            h = b.max_pool2d(h, pool_size=(2, 2), strides=(2, 2))
    return b.build([h], ["y"])


def compiled(graph, outdir: Path, sparse: str, target, name: str = "layer") -> Path:
    """An artifact of `graph` for `target` (write_artifact compiles for the host only)."""
    from kcompile.compiler.artifact import write_compilation
    from kcompile.compiler.driver import Compilation, CompileOptions
    options = CompileOptions(sparse=sparse, target=target)
    return write_compilation(Compilation({"forward": graph}, name, options), outdir)


def main(argv=None):
    args = parse_args(argv)
    os.environ["KCOMPILE_NUM_THREADS"] = "1"
    from kcompile.compiler.kernels.config import vector_bits
    from kcompile.compiler.kernels.sparse_int8 import uses_permute
    from kcompile.compiler.target import host_target
    from kcompile.passes.sparse_cost import ESTIMATE_BATCHES
    from kcompile.passes.sparsify import sparsify
    from kcompile.runtime import load
    from bench_machine import one_thread_header
    target = host_target().without("avx512f") if args.avx2 else host_target()
    print(one_thread_header(f"single pruned layers, dense vs forced sparse{' (int8)' if args.int8 else ''}"
                            f"{', forced AVX2' if args.avx2 else ''}"))
    rng = np.random.default_rng(0)
    bars = []
    names = [n for n in CASES if not args.only or n in args.only.split(",")]
    for name in names:
        shape, kshape, pool, sparsity = CASES[name]
        g = layer_graph(name, shape, kshape, pool, sparsity)
        if args.int8:
            g = int8_graph(g, rng, shape)
        d = sparsify(g, mode="auto", lanes=vector_bits(target.features) // 32,
                     int8_permute=uses_permute(target.features)).meta["sparsity"][0]
        with tempfile.TemporaryDirectory() as tmp:
            models = [load(compiled(g, Path(tmp) / mode, mode, target)) for mode in ("never", "always")]
            for m in models:
                m.nthreads = 1
            for batch in (int(b) for b in args.batches.split(",")):
                x = rng.uniform(0, 1, (batch, *shape)).astype(np.float32)
                med, rounds = interleaved([NativeCall(m, x) for m in models], args.seconds)
                measured = ratio(rounds, 0, 1)
                est = d.speedup[ESTIMATE_BATCHES.index(batch)] if batch in ESTIMATE_BATCHES else float("nan")
                print(f"{name:>15} b{batch:<3} {'sparse' if d.sparse else 'dense ':6} dense {med[0]:9.1f} us, "
                      f"sparse {med[1]:9.1f} us: measured {measured:5.2f}x (best {best_ratio(rounds, 0, 1):5.2f}x), "
                      f"model {est:5.2f}x ({d.layout})")
                ok = measured >= 0.9 if d.sparse else measured < 1.3
                bars.append((f"{name} batch {batch}: auto's {'sparse' if d.sparse else 'dense'} choice "
                             f"(measured {measured:.2f}x, model {est:.2f}x)", ok))
    for text, met in bars:
        print(f"bar: {text}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
