"""Pooling kernels vs the reference in ir/ops/nn.py: sizes, strides, padding, tails, NaN, first-max gradient routing."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.pool import pool_function
from kcompile.compiler.kernels.standalone import JitModule, call, host_features

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)
from kcompile.ir.ops.nn import avg_pool2d_grad_ref, avg_pool2d_ref, max_pool2d_grad_ref, max_pool2d_ref

# (H, W, C), pool, strides, padding
CASES = [
    ((6, 6, 3), (2, 2), (2, 2), "valid"),
    ((7, 5, 17), (3, 3), (2, 2), "same"),
    ((7, 8, 33), (3, 2), (1, 1), "same"),     # overlapping windows: gradients accumulate
    ((5, 5, 1), (5, 5), (1, 1), "valid"),
    ((4, 9, 16), (1, 3), (1, 2), "same"),
    ((3, 3, 2), (4, 4), (3, 3), "same"),      # window larger than the input
]
KINDS = ("max", "avg", "max_grad", "avg_grad")


def _geo(case):
    hwc, pool, strides, padding = case
    return geometry2d(("N", *hwc), pool, strides, (1, 1), padding)


def _attrs(case):
    return {"pool_size": case[1], "strides": case[2], "padding": case[3]}


@pytest.fixture(scope="module")
def jit(every_call_threaded):
    mod = ir.Module("pool_tests")
    feats = host_features()
    names = {}
    for i, case in enumerate(CASES):
        for kind in KINDS:
            fn = pool_function(mod, feats, "f32", kind, _geo(case))
            fn.linkage = "external"
            names[i, kind] = fn.name
    fn = pool_function(mod, feats, "f64", "max_grad", _geo(CASES[2]))
    fn.linkage = "external"
    names["f64"] = fn.name
    return JitModule(mod), names


def _inputs(case, batch, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    g = _geo(case)
    # few distinct values, so windows have ties and the first-max rule matters
    x = rng.integers(-3, 3, size=(batch, *case[0])).astype(dtype)
    dy = rng.standard_normal((batch, g.oh, g.ow, case[0][2])).astype(dtype)
    return x, dy


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("batch,nthreads", [(1, 1), (3, 2), (0, 2)])
def test_pooling_matches_reference(jit, i, batch, nthreads):
    jm, names = jit
    case, attrs = CASES[i], _attrs(CASES[i])
    x, dy = _inputs(case, batch, i)
    for kind, ref in (("max", max_pool2d_ref), ("avg", avg_pool2d_ref)):
        y = np.full(dy.shape, np.nan, np.float32)
        call(jm, names[i, kind], [x, y], batch, nthreads)
        np.testing.assert_allclose(y, ref(x, attrs), rtol=1e-6, atol=1e-6)
    dx = np.full(x.shape, np.nan, np.float32)
    call(jm, names[i, "max_grad"], [x, dy, dx], batch, nthreads)
    np.testing.assert_allclose(dx, max_pool2d_grad_ref(x, dy, attrs), rtol=1e-6, atol=1e-6)
    dx = np.full(x.shape, np.nan, np.float32)
    call(jm, names[i, "avg_grad"], [dy, dx], batch, nthreads)
    np.testing.assert_allclose(dx, avg_pool2d_grad_ref(dy, attrs, x.shape), rtol=1e-5, atol=1e-6)


def test_max_pool_propagates_nan_and_handles_all_minus_inf(jit):
    jm, names = jit
    case = CASES[1]
    x, dy = _inputs(case, 2, 7)
    x[0, 0, 0, 0] = np.nan
    x[1, :, :, 2] = -np.inf
    y = np.zeros(dy.shape, np.float32)
    call(jm, names[1, "max"], [x, y], 2, 1)
    np.testing.assert_array_equal(y, max_pool2d_ref(x, _attrs(case)))
    dx = np.zeros(x.shape, np.float32)
    call(jm, names[1, "max_grad"], [x, dy, dx], 2, 1)
    # overlapping windows add in another order than the reference: last-bit differences only
    np.testing.assert_allclose(dx, max_pool2d_grad_ref(x, dy, _attrs(case)), rtol=1e-6, atol=1e-6)


def test_max_pool_grad_f64(jit):
    jm, names = jit
    x, dy = _inputs(CASES[2], 2, 3, np.float64)
    dx = np.zeros(x.shape)
    call(jm, names["f64"], [x, dy, dx], 2, 2)
    np.testing.assert_allclose(dx, max_pool2d_grad_ref(x, dy, _attrs(CASES[2])), rtol=1e-12)
