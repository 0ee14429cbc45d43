"""Convolution kernels (implicit GEMM) vs the reference in ir/ops/nn.py: strides, dilations, padding, groups, grads."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.conv import conv_function
from kcompile.compiler.kernels.epilogue import BiasActivation
from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.standalone import JitModule, call, host_features

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)
from kcompile.ir.ops.nn import conv2d_filter_grad_ref, conv2d_input_grad_ref, conv2d_ref

TOL = 2e-5
# (x shape (H, W, Cin), kernel (kh, kw), cout, strides, dilations, padding, groups)
CASES = [
    ((7, 9, 3), (3, 3), 5, (1, 1), (1, 1), "valid", 1),     # K = 27: direct kernel
    ((7, 9, 3), (3, 3), 5, (1, 1), (1, 1), "same", 1),
    ((8, 7, 2), (3, 2), 33, (2, 1), (1, 1), "same", 1),
    ((9, 9, 4), (3, 3), 6, (2, 3), (1, 1), "valid", 1),     # K = 36: implicit GEMM
    ((9, 11, 3), (2, 3), 4, (1, 1), (2, 3), "same", 1),
    ((6, 6, 4), (3, 3), 6, (1, 1), (1, 1), "same", 2),
    ((6, 5, 6), (3, 3), 6, (2, 2), (1, 1), "same", 6),      # depthwise: direct kernel (grads through GEMM)
    ((7, 9, 19), (3, 2), 19, (1, 2), (2, 1), "same", 19),   # depthwise, dilated, channel tail
    ((5, 5, 3), (2, 2), 6, (1, 1), (1, 1), "valid", 3),     # channel multiplier 2: GEMM per group
    ((5, 4, 17), (1, 1), 9, (1, 1), (1, 1), "valid", 1),     # pointwise: plain matmul
    ((5, 4, 6), (1, 1), 4, (1, 1), (1, 1), "same", 2),       # grouped pointwise
    ((1, 1, 1), (1, 1), 1, (1, 1), (1, 1), "valid", 1),
    ((4, 4, 1), (5, 5), 3, (3, 3), (1, 1), "same", 1),       # kernel larger than the input
    ((28, 28, 1), (3, 3), 32, (1, 1), (1, 1), "valid", 1),   # the MNIST convnet's first layer
    ((6, 5, 48), (3, 3), 30, (2, 1), (1, 1), "same", 1),     # K = 432 > KC: gathered in channel runs over K blocks
]
ATTRS = ("strides", "dilations", "padding", "groups")


def _attrs(case):
    _, _, _, s, d, p, g = case
    return dict(zip(ATTRS, (s, d, p, g)))


def _geo(case):
    hwc, k, cout, s, d, p, g = case
    return geometry2d(("N", *hwc), k, s, d, p, g, cout)


@pytest.fixture(scope="module")
def jit(every_call_threaded):
    mod = ir.Module("conv_tests")
    feats = host_features()
    names = {}
    for i, case in enumerate(CASES):
        for kind in ("forward", "input_grad", "filter_grad"):
            names[i, kind] = _export(conv_function(mod, feats, "f32", kind, _geo(case)))
    epi = BiasActivation(True, "relu")
    names["epi"] = _export(conv_function(mod, feats, "f32", "forward", _geo(CASES[5]), epi))
    names["epi_dw"] = _export(conv_function(mod, feats, "f32", "forward", _geo(CASES[7]), epi))
    names["epi_direct"] = _export(conv_function(mod, feats, "f32", "forward", _geo(CASES[1]), epi))
    names["f64"] = _export(conv_function(mod, feats, "f64", "forward", _geo(CASES[2])))
    return JitModule(mod), names


def _export(fn):
    fn.linkage = "external"
    return fn.name


def _data(case, batch, rng, dtype=np.float32):
    hwc, k, cout, *_ = case
    g = _geo(case)
    x = rng.standard_normal((batch, *hwc)).astype(dtype)
    w = rng.standard_normal((*k, hwc[2] // g.groups, cout)).astype(dtype)
    dy = rng.standard_normal((batch, g.oh, g.ow, cout)).astype(dtype)
    return x, w, dy


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("batch,nthreads", [(1, 1), (3, 2), (0, 2)])
def test_conv2d_forward_and_grads(jit, i, batch, nthreads):
    jm, names = jit
    case = CASES[i]
    x, w, dy = _data(case, batch, np.random.default_rng(i))
    attrs = _attrs(case)
    y = np.full(dy.shape, np.nan, np.float32)
    call(jm, names[i, "forward"], [x, w, y], batch, nthreads)
    np.testing.assert_allclose(y, conv2d_ref(x, w, attrs), rtol=TOL, atol=TOL)
    dx = np.full(x.shape, np.nan, np.float32)
    call(jm, names[i, "input_grad"], [dy, w, dx], batch, nthreads)
    np.testing.assert_allclose(dx, conv2d_input_grad_ref(dy, w, attrs, x.shape), rtol=TOL, atol=TOL)
    dw = np.full(w.shape, np.nan, np.float32)
    call(jm, names[i, "filter_grad"], [x, dy, dw], batch, nthreads)
    np.testing.assert_allclose(dw, conv2d_filter_grad_ref(x, dy, attrs, w.shape), rtol=TOL, atol=TOL * 10)


@pytest.mark.parametrize("i,key", [(5, "epi"), (7, "epi_dw"), (1, "epi_direct")])
def test_conv2d_bias_relu_epilogue(jit, i, key):
    jm, names = jit
    case = CASES[i]
    x, w, dy = _data(case, 2, np.random.default_rng(5))
    bias = np.random.default_rng(1).standard_normal(case[2]).astype(np.float32)
    y = np.zeros(dy.shape, np.float32)
    call(jm, names[key], [x, w, y, bias], 2, 2)
    np.testing.assert_allclose(y, np.maximum(conv2d_ref(x, w, _attrs(case)) + bias, 0), rtol=TOL, atol=TOL)


def test_conv2d_f64(jit):
    jm, names = jit
    x, w, dy = _data(CASES[2], 2, np.random.default_rng(2), np.float64)
    y = np.zeros(dy.shape)
    call(jm, names["f64"], [x, w, y], 2, 1)
    np.testing.assert_allclose(y, conv2d_ref(x, w, _attrs(CASES[2])), rtol=1e-12, atol=1e-12)
