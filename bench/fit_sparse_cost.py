"""Refit passes/sparse_cost.py's f32 figures on this host: single-layer artifacts, least squares.

Ten pruned Dense layers (K x N from 64 x 256 to 1024 x 1024, 80-97 % zeros) are compiled dense and
sparse in one layout at a time (windows: AVX-512 only; CSC tiles: the host's lanes, and 8 lanes with
--avx2), timed at 1, 8 and 64 rows with the runners interleaved (fastest call of each, the
artifact's call overhead subtracted), and the per-unit costs the model uses are fitted:

- dense: ns per padded weight at 1 row (DENSE_GEMV_PER_WEIGHT) and per multiply-add at 8 and 64 rows
  (DENSE_PER_MAC);
- windows, per row at 1 row (WINDOWS_LONE) and at 64 (WINDOWS_GROUPED): step, input, output, group;
- CSC tiles (COLUMN_TILE[lanes]): per tile, stored element, transposed input, output, and the extra
  per element when the tile exceeds L1; a lone row (COLUMN_ROW): per stored element and output.

The fit weighs each point by 1/time (relative errors). Print only: copying figures into the model is
a reviewed change. Takes about a minute per layout on 2 cores.

    python bench/fit_sparse_cost.py [--avx2] [--seconds S]
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
from bench_sparse_int8 import interleaved  # noqa: E402
from bench_sparse_layers import layer_graph  # noqa: E402

SHAPES = ((288, 64, .9), (576, 128, .9), (1152, 10, .9), (784, 512, .9), (2048, 32, .9), (128, 512, .9),
          (576, 128, .97), (288, 64, .8), (64, 256, .9), (1024, 1024, .95))
ROWS = (1, 8, 64)
CALL_NS = 900.0      # an artifact entry point's own cost (bench_sparse.py's empty model: about 1 us)


def compiled(graph, outdir: Path, sparse: str, target, lanes: int) -> Path:
    """An artifact in one layout: lanes=8 tells the sparsify pass 8-lane vectors (CSC, tiles as wide as
    the target's), lanes=16 forces the windows layout (the pass's best_layout swapped for the windows
    candidate while this compiles: a measuring tool's override, not an option of the pass)."""
    from kcompile.compiler.artifact import write_compilation
    from kcompile.compiler.driver import Compilation, CompileOptions, graph_pipeline
    from kcompile.passes import sparse_cost, sparsify
    passes = tuple(p.replace("lanes=16", f"lanes={lanes}") if p.startswith("sparsify") else p
                   for p in graph_pipeline(3, sparse, target))
    chosen = sparsify.best_layout

    def windows(w, use, lanes):
        lay = sparse_cost.layouts(w, windows=True)[0]
        return lay, sparse_cost.speedups(lay, *w.shape, use, lanes)
    sparsify.best_layout = windows if lanes == 16 else chosen
    try:
        return write_compilation(Compilation({"forward": graph}, "layer", CompileOptions(passes=passes, target=target)),
                                 outdir)
    finally:
        sparsify.best_layout = chosen


def measure(target, pass_lanes: int, seconds: float) -> list:
    """(k, n, nnz, windows steps, rows, dense ns, sparse ns) per shape and row count."""
    from kcompile.ir.ops.sparse import windows_steps
    from kcompile.runtime import load
    rng, out = np.random.default_rng(0), []
    for k, n, sparsity in SHAPES:
        g = layer_graph("m", (k,), (k, n), False, sparsity)
        w = g.param_values["m/kernel"]
        steps = int(windows_steps(w, (32, 16)).sum())
        with tempfile.TemporaryDirectory() as tmp:
            models = [load(compiled(g, Path(tmp) / m, m, target, pass_lanes)) for m in ("never", "always")]
            for rows in ROWS:
                x = rng.uniform(0, 1, (rows, k)).astype(np.float32)
                _, rounds = interleaved([NativeCall(m, x) for m in models], seconds)
                best = [min(r[i] for r in rounds) * 1e3 - CALL_NS for i in range(2)]
                out.append((k, n, int((w != 0).sum()), steps, rows, *best))
    return out


def fit(columns, times) -> np.ndarray:
    a, y = np.asarray(columns, float), np.asarray(times, float)
    return np.linalg.lstsq(a / y[:, None], np.ones_like(y), rcond=None)[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--avx2", action="store_true", help="the host less AVX-512 (8-lane CSC tiles)")
    p.add_argument("--seconds", type=float, default=0.6)
    args = p.parse_args(argv)
    os.environ["KCOMPILE_NUM_THREADS"] = "1"
    from kcompile.compiler.kernels.config import vector_bits
    from kcompile.compiler.target import host_target
    target = host_target().without("avx512f") if args.avx2 else host_target()
    lanes = vector_bits(target.features) // 32
    np.set_printoptions(precision=3, suppress=True)
    csc = measure(target, 8, args.seconds)
    pad = lambda n: -(-n // lanes) * lanes   # noqa: E731
    print("dense GEMV ns per padded weight (1 row):", fit([[k * pad(n)] for k, n, *_ in csc[0::3]],
                                                        [m[5] for m in csc[0::3]]))
    print("dense ns per multiply-add (8, 64 rows):", fit([[k * pad(n) * r] for k, n, _, _, r, *_ in csc if r > 1],
                                                       [m[5] for m in csc if m[4] > 1]))
    tiles = [m for m in csc if m[4] > 1]
    t = lambda r: -(-r // lanes)   # noqa: E731
    print(f"CSC tile of {lanes} rows: element, transposed input, output, element beyond L1:",
          fit([[t(r) * nnz, t(r) * k * lanes, t(r) * n * lanes, t(r) * nnz * (k * lanes * 4 > 32 * 1024)]
               for k, n, nnz, _, r, *_ in tiles], [m[6] for m in tiles]))
    print("CSC lone row: stored element, output:", fit([[nnz, n] for k, n, nnz, *_ in csc[0::3]],
                                                      [m[6] for m in csc[0::3]]))
    if lanes == 16:
        win = measure(target, 16, args.seconds)
        groups = lambda k, n: -(-k // 32) * -(-n // 16)   # noqa: E731
        for rows, name in ((1, "WINDOWS_LONE"), (64, "WINDOWS_GROUPED")):
            pts = [m for m in win if m[4] == rows]
            print(f"{name} per row: step, input, output, group:",
                  fit([[s, k, n, groups(k, n)] for k, n, _, s, *_ in pts], [m[6] / rows for m in pts]))


if __name__ == "__main__":
    main()
