"""Sparse convolution: the MNIST convnet (bench_models.convnet_graph: 3 Conv2D + Dense) pruned, 1 and 2 threads.

Random glorot_uniform weights (latency does not depend on training), every kernel pruned with NumPy
to --sparsity by magnitude (unstructured), compiled as artifacts in this one process: dense
(--sparse never), --sparse auto (the pass's choice per kernel, printed) and --sparse always (every
convolution through patches + sparse_matmul). The native entry points (bench_sparse.NativeCall) run
round-robin sample by sample; medians and the median of per-round ratios (dense / other) are
printed, with max |difference| to the dense artifact, for each --threads count (native calls given
that many threads; both kernels split batches over them). The issue sets no figure for convolutions:
the `bar:` lines check the pass's rule (auto is never measurably slower than dense) and report
whether forcing sparse convolutions pays. --avx2 compiles all three for the host less AVX-512 (the
narrow path the tests force), so the pass's AVX2 choices are measured too.

With --int8 the graph is quantized first (int8 convolutions: sparse_qmatmul over 8-bit patches; the
outputs then equal the dense int8 ones bit for bit).

    python bench/bench_sparse_conv.py [--seconds S] [--batches 1,64] [--threads 1,2] [--sparsity 0.9] [--int8] [--avx2]
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
from bench_models import convnet_graph  # noqa: E402
from bench_sparse import NativeCall  # noqa: E402
from bench_sparse_int8 import best_ratio, decisions, int8_graph, interleaved, ratio  # noqa: E402
from bench_sparse_layers import compiled  # noqa: E402

RUNNERS = ("dense", "auto", "always")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="time budget per batch size")
    p.add_argument("--batches", default="1,64")
    p.add_argument("--threads", default="1,2", help="threads per native call, each measured")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--int8", action="store_true", help="quantize first (quantize-int8): sparse int8 convolutions")
    p.add_argument("--avx2", action="store_true", help="compile for the host less AVX-512")
    return p.parse_args(argv)


def pruned_convnet(sparsity: float):
    g = convnet_graph()
    values = {}
    for name, w in g.param_values.items():
        if name.endswith("kernel"):
            w = w.copy()
            w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
        values[name] = w
    return g.with_param_values(values)


def main(argv=None):
    args = parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    os.environ["KCOMPILE_NUM_THREADS"] = str(max(threads))
    from kcompile.compiler.kernels.config import vector_bits
    from kcompile.compiler.kernels.sparse_int8 import uses_permute as uses_int8_permute
    from kcompile.compiler.target import host_target
    from kcompile.passes.sparsify import format_sparsity, sparsify
    from kcompile.runtime import load
    from bench_machine import one_thread_header
    t = host_target().without("avx512f") if args.avx2 else host_target()
    print(one_thread_header(f"MNIST convnet{' (int8)' if args.int8 else ''}, random weights pruned to "
                            f"{args.sparsity:.0%} with NumPy{', forced AVX2' if args.avx2 else ''}",
                            threads=f"threads {args.threads}"))
    rng = np.random.default_rng(0)
    g = pruned_convnet(args.sparsity)
    if args.int8:
        g = int8_graph(g, rng, (28, 28, 1))
    print(format_sparsity(sparsify(g, mode="auto", lanes=vector_bits(t.features) // 32,
                                   int8_permute=uses_int8_permute(t.features))))
    bars = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [compiled(g, Path(tmp) / mode, mode, t, "convnet") for mode in ("never", "auto", "always")]
        models = [load(p) for p in paths]
        print(f"auto stores sparse: {decisions(paths[1])}")
        sizes = [(p / "weights.bin").stat().st_size for p in paths]
        print("weights.bin: " + ", ".join(f"{r} {s:,} B" for r, s in zip(RUNNERS, sizes)))
        for batch, nthreads in [(int(b), n) for n in threads for b in args.batches.split(",")]:
            x = rng.uniform(0, 1, (batch, 28, 28, 1)).astype(np.float32)
            calls = [NativeCall(m, x, nthreads) for m in models]
            outs = [c().copy() for c in calls]
            diff = max(float(np.abs(o - outs[0]).max()) for o in outs[1:])
            med, rounds = interleaved(calls, args.seconds)
            auto, always = ratio(rounds, 0, 1), ratio(rounds, 0, 2)
            at = f"batch {batch}, {nthreads} thread{'s' if nthreads > 1 else ''}"
            print(f"{at:>19}: " + ", ".join(f"{r} {v:8.1f} us" for r, v in zip(RUNNERS, med))
                  + f" | dense/auto {auto:.2f}x (best {best_ratio(rounds, 0, 1):.2f}x), dense/always {always:.2f}x "
                    f"(best {best_ratio(rounds, 0, 2):.2f}x) | max diff {diff:.1e}")
            bars.append((f"{at}: --sparse auto not slower than dense ({auto:.2f}x, 0.95x allowed for noise)",
                         auto >= 0.95))
            bars.append((f"{at}: sparse convolutions (always) faster than dense ({always:.2f}x)",
                         always > 1.0))
    for text, met in bars:
        print(f"bar: {text}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
