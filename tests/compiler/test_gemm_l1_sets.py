"""A narrow GEMM over rows a multiple of 1 KiB apart takes a tile short enough for its rows' L1 sets."""
import numpy as np

from kcompile.compiler.jit import compile_graph
from kcompile.compiler.kernels.config import GemmShape
from kcompile.compiler.kernels.matmul import _rows_within_l1_sets
from kcompile.ir import GraphBuilder, TensorType

NARROW = GemmShape(lanes=16, mr=24, nr=16, kc=384, mc=96, nc=256)


def test_rows_sharing_few_sets_get_a_shorter_tile():
    assert _rows_within_l1_sets(NARROW, 512 * 4).mr == 12          # 2 sets x 8 ways hold 12 rows, not 24
    assert _rows_within_l1_sets(NARROW, 1024 * 4).mr == 6           # 1 set
    assert _rows_within_l1_sets(NARROW, 784 * 4) is NARROW          # rows spread over every set
    wide = GemmShape(lanes=16, mr=12, nr=32, kc=384, mc=96, nc=256)
    assert _rows_within_l1_sets(wide, 512 * 4) is wide              # only narrow GEMMs were measured


def test_the_shorter_tile_computes_the_same_product():
    rng = np.random.default_rng(0)
    b = GraphBuilder("narrow")
    x = b.input("x", TensorType(["N", 512]))
    w = rng.standard_normal((512, 10)).astype(np.float32)
    fn = compile_graph(b.build([b.matmul(x, b.param("w", w))]))
    for m in (1, 5, 13, 24, 40):
        a = rng.standard_normal((m, 512)).astype(np.float32)
        np.testing.assert_allclose(fn([a])[0], a @ w, rtol=1e-4, atol=1e-4)
