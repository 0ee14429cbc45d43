"""The kernels on other vector widths: AVX2 (8 float lanes, 16 registers) and SSE4.2 (4 lanes, no FMA),
compiled for those CPUs and run here (their code runs on this newer CPU)."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.conv import conv_function
from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.matmul import matmul_function
from kcompile.compiler.kernels.pool import pool_function
from kcompile.compiler.kernels.standalone import JitModule, call, host_features
from kcompile.ir.ops.nn import conv2d_filter_grad_ref, conv2d_input_grad_ref, conv2d_ref, max_pool2d_grad_ref

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

TARGETS = {
    "avx2": ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f"),
    "sse": ("x86-64-v2", "+sse4.2,-avx,-avx2,-fma,-avx512f"),
}
CONV = dict(strides=(2, 1), dilations=(1, 1), padding="same", groups=1)


def _supported(features):
    host = host_features().split(",")
    return all(f"+{f[1:]}" in host for f in features.split(",") if f.startswith("+"))


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request, every_call_threaded):
    cpu, feats = TARGETS[request.param]
    if not _supported(feats):
        pytest.skip(f"this CPU cannot run {request.param} code")
    mod = ir.Module(f"kernels_{request.param}")
    geo = geometry2d(("N", 9, 7, 5), (3, 3), CONV["strides"], CONV["dilations"], CONV["padding"], 1, 19)
    fns = {"mm": matmul_function(mod, feats, "f32", ("N", 37), (37, 21)),
           "mm64": matmul_function(mod, feats, "f64", ("N", 9), (13, 9), transpose_b=True),
           "fwd": conv_function(mod, feats, "f32", "forward", geo),
           "dx": conv_function(mod, feats, "f32", "input_grad", geo),
           "dw": conv_function(mod, feats, "f32", "filter_grad", geo),
           "pool": pool_function(mod, feats, "f32", "max_grad",
                                 geometry2d(("N", 7, 6, 11), (3, 3), (2, 2), (1, 1), "same"))}
    for f in fns.values():
        f.linkage = "external"
    return JitModule(mod, cpu=cpu, features=feats), {k: f.name for k, f in fns.items()}


def test_matmuls(target):
    jm, names = target
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((15, 37), np.float32), rng.standard_normal((37, 21), np.float32)
    c = np.zeros((15, 21), np.float32)
    call(jm, names["mm"], [a, w, c], 15, 2)
    np.testing.assert_allclose(c, a @ w, rtol=1e-5, atol=1e-5)
    a, w = rng.standard_normal((3, 9)), rng.standard_normal((13, 9))
    c = np.zeros((3, 13))
    call(jm, names["mm64"], [a, w, c], 3, 1)
    np.testing.assert_allclose(c, a @ w.T, rtol=1e-12)


def test_convolution_and_grads(target):
    jm, names = target
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 9, 7, 5), np.float32), rng.standard_normal((3, 3, 5, 19), np.float32)
    y = np.zeros((2, 5, 7, 19), np.float32)
    call(jm, names["fwd"], [x, w, y], 2, 2)
    np.testing.assert_allclose(y, conv2d_ref(x, w, CONV), rtol=2e-5, atol=2e-5)
    dx = np.zeros_like(x)
    call(jm, names["dx"], [y, w, dx], 2, 2)
    np.testing.assert_allclose(dx, conv2d_input_grad_ref(y, w, CONV, x.shape), rtol=2e-5, atol=2e-5)
    dw = np.zeros_like(w)
    call(jm, names["dw"], [x, y, dw], 2, 2)
    np.testing.assert_allclose(dw, conv2d_filter_grad_ref(x, y, CONV, w.shape), rtol=2e-5, atol=2e-4)


def test_pool_grad(target):
    jm, names = target
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 3, (2, 7, 6, 11)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 3, 11), np.float32)
    dx = np.zeros_like(x)
    call(jm, names["pool"], [x, dy, dx], 2, 2)
    attrs = {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}
    np.testing.assert_allclose(dx, max_pool2d_grad_ref(x, dy, attrs), rtol=1e-6, atol=1e-6)
