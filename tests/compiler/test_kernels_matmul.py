"""Matmul kernels (packed GEMM + micro-kernel) vs NumPy: odd sizes, transposes, batches, epilogues, threads."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.epilogue import BiasActivation
from kcompile.compiler.kernels.matmul import matmul_function
from kcompile.compiler.kernels.standalone import JitModule, call, host_features

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

RTOL = {"f32": 1e-5, "f64": 1e-12}

# (dtype, a_shape, b_shape, transpose_a, transpose_b, batch); "N" is the run-time batch size
CASES = [
    ("f32", ("N", 7), (7, 5), False, False, 1),
    ("f32", ("N", 33), (33, 65), False, False, 17),
    ("f32", ("N", 1), (1, 3), False, False, 3),
    ("f32", ("N", 300), (300, 40), False, False, 2),      # K spans two KC blocks, wide path
    ("f32", ("N", 65), (65, 33), False, False, 70),       # M spans MC blocks, packed path
    ("f32", ("N", 500), (500, 261), False, False, 101),   # M > MC, K > KC (384), N > NC: every block loop wraps
    ("f32", ("N", 17), (33, 17), False, True, 9),         # B transposed: packed B
    ("f32", (17, 33), (17, 20), True, False, 1),          # A transposed (static): packed or read in place
    ("f32", ("N", 33), ("N", 20), True, False, 37),       # x^T @ dy: the contraction runs over the batch
    ("f64", ("N", 6), ("N", 3), True, False, 0),          # ... and an empty batch gives zeros
    ("f32", ("N", 3, 7), (7, 17), False, False, 5),       # batch folded into M
    ("f32", ("N", 3, 7), ("N", 7, 9), False, False, 4),   # batched
    ("f32", ("N", 3, 7), (1, 7, 9), False, False, 2),     # B broadcast over batch
    ("f32", (2, 1, 5, 7), (3, 7, 6), False, False, 1),    # 2-d batch broadcast both ways
    ("f32", ("N", 9, 7), ("N", 5, 9), True, True, 3),     # both transposed, batched
    ("f32", ("N", 0), (0, 5), False, False, 4),           # empty contraction -> zeros
    ("f64", ("N", 33), (33, 17), False, False, 19),
    ("f64", ("N", 9), (17, 9), False, True, 2),
    ("i32", ("N", 9), (9, 20), False, False, 7),
    ("i8", ("N", 9), (9, 70), False, False, 5),            # wraps like NumPy's int8 matmul
    ("f32", ("N", 5), (5, 3), False, False, 0),            # empty batch: nothing to do, nothing written
    ("f32", ("N", 40), ("N", 70), True, False, 50),       # x^T @ dy, K in one KC block: A read in place
    ("f32", ("N", 40), ("N", 70), True, False, 400),      # ... K over two KC blocks: A packed
    ("f32", ("N", 1100), (1100, 512), False, False, 1),    # wide path, 2 K blocks; 3 threads cut partial panels
]


def _concrete(shape, batch):
    return tuple(batch if d == "N" else d for d in shape)


@pytest.fixture(scope="module")
def jit(every_call_threaded):
    mod = ir.Module("matmul_tests")
    feats = host_features()
    names = {}
    for i, (dtype, a, b, ta, tb, _) in enumerate(CASES):
        names[i] = _export(matmul_function(mod, feats, dtype, a, b, ta, tb))
    epi = BiasActivation(True, "relu")
    names["epi"] = _export(matmul_function(mod, feats, "f32", ("N", 37), (37, 70), epi=epi))
    names["epi64"] = _export(matmul_function(mod, feats, "f64", ("N", 5), (5, 9), epi=BiasActivation(False, "relu")))
    return JitModule(mod), names


def _export(fn):
    fn.linkage = "external"
    return fn.name


def _ref(a, b, ta, tb):
    a = np.swapaxes(a, -1, -2) if ta else a
    b = np.swapaxes(b, -1, -2) if tb else b
    return np.matmul(a, b)


def _rand(shape, dtype, rng):
    if dtype in ("i32", "i8"):
        return rng.integers(-9, 9, size=shape).astype({"i32": np.int32, "i8": np.int8}[dtype])
    return rng.standard_normal(shape).astype({"f32": np.float32, "f64": np.float64}[dtype])


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("nthreads", [1, 2])
def test_matmul_matches_numpy(jit, i, nthreads):
    jm, names = jit
    dtype, a_shape, b_shape, ta, tb, batch = CASES[i]
    rng = np.random.default_rng(i)
    a = _rand(_concrete(a_shape, batch), dtype, rng)
    b = _rand(_concrete(b_shape, batch), dtype, rng)
    want = _ref(a, b, ta, tb)
    got = np.full(want.shape, 7, want.dtype)   # garbage: the kernel must overwrite every element
    call(jm, names[i], [a, b, got], batch, nthreads)
    if dtype in ("i32", "i8"):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("nthreads", [3, 5])
def test_wide_path_split_across_threads(jit, nthreads):
    jm, names = jit
    i = len(CASES) - 1
    rng = np.random.default_rng(1)
    a, b = _rand((1, 1100), "f32", rng), _rand((1100, 512), "f32", rng)
    got = np.full((1, 512), np.nan, np.float32)
    call(jm, names[i], [a, b, got], 1, nthreads)
    np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-4)


def test_threads_give_identical_results(jit):
    jm, names = jit
    rng = np.random.default_rng(0)
    a, b = _rand((70, 65), "f32", rng), _rand((65, 33), "f32", rng)
    outs = []
    for nthreads in (1, 2, 3):
        c = np.zeros((70, 33), np.float32)
        call(jm, names[4], [a, b, c], 70, nthreads)
        outs.append(c)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


@pytest.mark.parametrize("batch", [1, 2, 13, 40])
def test_bias_relu_epilogue(jit, batch):
    jm, names = jit
    rng = np.random.default_rng(batch)
    a, w, bias = _rand((batch, 37), "f32", rng), _rand((37, 70), "f32", rng), _rand((70,), "f32", rng)
    got = np.zeros((batch, 70), np.float32)
    call(jm, names["epi"], [a, w, got, bias], batch, 2)
    np.testing.assert_allclose(got, np.maximum(a @ w + bias, 0), rtol=1e-5, atol=1e-5)


def test_relu_epilogue_f64_keeps_nan(jit):
    jm, names = jit
    a = np.ones((3, 5))
    a[1, 2] = np.nan
    w = -np.ones((5, 9))
    w[:, 0] = 1
    got = np.zeros((3, 9))
    call(jm, names["epi64"], [a, w, got], 3, 1)
    want = np.maximum(a @ w, 0)
    np.testing.assert_array_equal(got, want)
