"""The f32 GEMM's tile choices on odd sizes: micro-kernel heights (MR and the powers of two below it),
B read in place or packed (by row count), partial column panels, K over one or more KC blocks, and
the blocked direct convolution; on the host's widest vectors and on AVX2 (no AVX-512) code, with
2-thread results bitwise equal to 1 thread's."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels import gemm
from kcompile.compiler.kernels.config import gemm_shape
from kcompile.compiler.kernels.conv import conv_function
from kcompile.compiler.kernels.direct import pixel_blocks
from kcompile.compiler.kernels.epilogue import BiasActivation
from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.matmul import matmul_function
from kcompile.compiler.kernels.microkernel import tile_heights
from kcompile.compiler.kernels.standalone import JitModule, call, host_features
from kcompile.ir.ops.nn import conv2d_ref

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

AVX2 = ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f")
MATMULS = [(50, 45), (500, 70), (33, 10)]            # (K, N): a partial panel each; K = 500 spans 2 KC blocks
ROWS = [1, 3, 4, 5, 8, 13, 17, 28, 64, 197]          # every height, and M past 2 MC blocks (B packed)
CONVS = [  # (x shape, window, cout, strides, padding): direct kernels (K = kh*kw*cin <= 32)
    ((2, 28, 28, 1), (3, 3), 32, (1, 1), "valid"),    # the MNIST first layer: blocks of 9 and 8 pixels
    ((2, 11, 13, 3), (3, 3), 19, (2, 1), "same"),     # padded edges on both sides, a partial channel vector
    ((1, 6, 23, 2), (2, 3), 40, (1, 2), "valid"),     # 3 channel vectors, stride 2 along the row
]


def _targets():
    host = host_features().split(",")
    out = [(None, None)]
    if all(f"+{f[1:]}" in host for f in AVX2[1].split(",") if f.startswith("+")):
        out.append(AVX2)
    return out


@pytest.fixture(scope="module", params=_targets(), ids=lambda t: t[0] or "host")
def jit(request, every_call_threaded):
    cpu, feats = request.param
    feats_used = feats or host_features()
    mod = ir.Module("gemm_tiles")
    names = {}
    for k, n in MATMULS:
        fn = matmul_function(mod, feats_used, "f32", ("N", k), (k, n), epi=BiasActivation(True, "relu"))
        fn.linkage = "external"
        names["mm", k, n] = fn.name
    for shape, window, cout, strides, padding in CONVS:
        geo = geometry2d(("N",) + shape[1:], window, strides, (1, 1), padding, 1, cout)
        fn = conv_function(mod, feats_used, "f32", "forward", geo, BiasActivation(True, "relu"))
        fn.linkage = "external"
        names["conv", shape, cout] = fn.name
    return JitModule(mod, cpu=cpu, features=feats), names, feats_used


def test_tile_heights():
    assert tile_heights(12) == [12, 8, 4, 2, 1]
    assert tile_heights(6) == [6, 4, 2, 1]
    assert tile_heights(8) == [8, 4, 2, 1]
    assert tile_heights(1) == [1]


@pytest.mark.parametrize("k,n", MATMULS)
def test_matmul_rows_and_threads(jit, k, n):
    jm, names, feats = jit
    mc = gemm_shape(feats, 4, n).mc
    assert max(ROWS) > gemm.DIRECT_B_MC_BLOCKS * mc >= 28   # both the in-place and the packed B run
    rng = np.random.default_rng(k + n)
    w = rng.standard_normal((k, n), np.float32)
    bias = rng.standard_normal(n, np.float32)
    for m in ROWS:
        a = rng.standard_normal((m, k), np.float32)
        want = np.maximum(a.astype(np.float64) @ w + bias, 0)
        outs = []
        for threads in (1, 2):
            c = np.full((m, n), np.nan, np.float32)
            call(jm, names["mm", k, n], [a, w, c, bias], m, threads)
            outs.append(c)
        np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4, err_msg=f"M={m}")
        np.testing.assert_array_equal(outs[1], outs[0], err_msg=f"M={m}: 2 threads differ from 1")


@pytest.mark.parametrize("case", CONVS, ids=lambda c: f"{c[0][1]}x{c[0][2]}x{c[0][3]}-{c[2]}")
def test_direct_conv_blocks(jit, case):
    jm, names, _ = jit
    shape, window, cout, strides, padding = case
    rng = np.random.default_rng(shape[2])
    x = rng.standard_normal(shape, np.float32)
    w = rng.standard_normal(window + (shape[3], cout), np.float32)
    bias = rng.standard_normal(cout, np.float32)
    attrs = dict(strides=strides, dilations=(1, 1), padding=padding, groups=1)
    want = np.maximum(conv2d_ref(x, w, attrs) + bias, 0)
    outs = []
    for threads in (1, 2):
        y = np.full(want.shape, np.nan, np.float32)
        call(jm, names["conv", shape, cout], [x, w, y, bias], shape[0], threads)
        outs.append(y)
    np.testing.assert_allclose(outs[0], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(outs[1], outs[0])


def test_pixel_blocks_cover_the_inside_columns():
    # valid 3x3 over 28 columns: 26 outputs, all inside, in blocks of 9, 9 and 8 (AVX-512: 2 vectors)
    geo = geometry2d(("N", 28, 28, 1), (3, 3), (1, 1), (1, 1), "valid", 1, 32)
    assert pixel_blocks(geo, 2, 32) == [(0, 9, 2), (18, 8, 1)]
    # "same" padding: the first and last columns read padding and stay per pixel
    geo = geometry2d(("N", 28, 28, 1), (3, 3), (1, 1), (1, 1), "same", 1, 32)
    assert pixel_blocks(geo, 2, 32) == [(1, 9, 2), (19, 8, 1)]
    # the fused 2x2 pool's blocks (multiple=2): whole windows from an even column; the rest per pixel
    geo = geometry2d(("N", 28, 28, 1), (3, 3), (1, 1), (1, 1), "valid", 1, 32)
    assert pixel_blocks(geo, 2, 32, 2) == [(0, 10, 2), (20, 6, 1)]
    geo = geometry2d(("N", 28, 28, 1), (3, 3), (1, 1), (1, 1), "same", 1, 32)
    assert pixel_blocks(geo, 2, 32, 2) == [(2, 8, 3)]
    # no column has its whole window inside
    assert pixel_blocks(geometry2d(("N", 4, 4, 1), (5, 5), (3, 3), (1, 1), "same", 1, 3), 1, 32) == []


@pytest.mark.parametrize("k,n", MATMULS)
def test_a_rows_result_does_not_depend_on_the_row_count(jit, k, n):
    """Past a GEMV-sized call, every tile height sums k in the same order: batch chunks and predict's
    batches give each row the bits of one whole-batch call."""
    jm, names, _ = jit
    rng = np.random.default_rng(k)
    w = rng.standard_normal((k, n), np.float32)
    bias = rng.standard_normal(n, np.float32)
    a = rng.standard_normal((197, k), np.float32)
    whole = np.empty((197, n), np.float32)
    call(jm, names["mm", k, n], [a, w, whole, bias], 197, 1)
    for m in (5, 13, 14, 25, 26, 37, 64):
        part = np.empty((m, n), np.float32)
        call(jm, names["mm", k, n], [np.ascontiguousarray(a[:m]), w, part, bias], m, 1)
        np.testing.assert_array_equal(part, whole[:m], err_msg=f"M={m}")
