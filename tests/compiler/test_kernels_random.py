"""Randomized geometries (fixed seed): conv2d forward/input-grad/filter-grad and pooling vs the reference."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.conv import conv_function
from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.pool import pool_function
from kcompile.compiler.kernels.standalone import JitModule, call, host_features
from kcompile.ir.ops.nn import (avg_pool2d_grad_ref, avg_pool2d_ref, conv2d_filter_grad_ref, conv2d_input_grad_ref,
                                conv2d_ref, conv_geometry, max_pool2d_grad_ref, max_pool2d_ref)

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

N_CONV, N_POOL = 24, 12


def _conv_case(rng):
    """A random valid geometry: sizes 1-9, kernels 1-4, strides/dilations 1-3, groups dividing both."""
    while True:
        groups = int(rng.choice([1, 1, 1, 2, 3]))
        cin, cout = groups * int(rng.integers(1, 6)), groups * int(rng.integers(1, 6))
        h, w = (int(v) for v in rng.integers(1, 10, 2))
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        pad = str(rng.choice(["valid", "same"]))
        if all(conv_geometry(n, kk, ss, dd, pad)[0] > 0 for n, kk, ss, dd in zip((h, w), k, s, d)):
            return (h, w, cin), k, cout, {"strides": s, "dilations": d, "padding": pad, "groups": groups}


def _pool_case(rng):
    while True:
        h, w, c = (int(v) for v in rng.integers(1, 9, 3))
        p = tuple(int(v) for v in rng.integers(1, 4, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        pad = str(rng.choice(["valid", "same"]))
        if all(conv_geometry(n, pp, ss, 1, pad)[0] > 0 for n, pp, ss in zip((h, w), p, s)):
            return (h, w, c), {"pool_size": p, "strides": s, "padding": pad}


RNG = np.random.default_rng(2024)
CONVS = [_conv_case(RNG) for _ in range(N_CONV)]
POOLS = [_pool_case(RNG) for _ in range(N_POOL)]


def _conv_geo(case):
    hwc, k, cout, a = case
    return geometry2d(("N", *hwc), k, a["strides"], a["dilations"], a["padding"], a["groups"], cout)


def _pool_geo(case):
    hwc, a = case
    return geometry2d(("N", *hwc), a["pool_size"], a["strides"], (1, 1), a["padding"])


@pytest.fixture(scope="module")
def jit(every_call_threaded):
    mod, feats, names = ir.Module("random_kernels"), host_features(), {}
    for i, case in enumerate(CONVS):
        for kind in ("forward", "input_grad", "filter_grad"):
            names["conv", i, kind] = conv_function(mod, feats, "f32", kind, _conv_geo(case))
    for i, case in enumerate(POOLS):
        for kind in ("max", "avg", "max_grad", "avg_grad"):
            names["pool", i, kind] = pool_function(mod, feats, "f32", kind, _pool_geo(case))
    for fn in names.values():
        fn.linkage = "external"
    return JitModule(mod), {k: fn.name for k, fn in names.items()}


@pytest.mark.parametrize("i", range(N_CONV))
def test_random_conv(jit, i):
    jm, names = jit
    hwc, k, cout, attrs = CONVS[i]
    g, rng = _conv_geo(CONVS[i]), np.random.default_rng(i)
    x = rng.standard_normal((2, *hwc)).astype(np.float32)
    w = rng.standard_normal((*k, hwc[2] // attrs["groups"], cout)).astype(np.float32)
    dy = rng.standard_normal((2, g.oh, g.ow, cout)).astype(np.float32)
    for kind, args, ref in (("forward", (x, w), conv2d_ref(x, w, attrs)),
                            ("input_grad", (dy, w), conv2d_input_grad_ref(dy, w, attrs, x.shape)),
                            ("filter_grad", (x, dy), conv2d_filter_grad_ref(x, dy, attrs, w.shape))):
        out = np.full(ref.shape, np.nan, np.float32)
        call(jm, names["conv", i, kind], [*args, out], 2, 2)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4, err_msg=f"{kind} {CONVS[i]}")


@pytest.mark.parametrize("i", range(N_POOL))
def test_random_pool(jit, i):
    jm, names = jit
    hwc, attrs = POOLS[i]
    g, rng = _pool_geo(POOLS[i]), np.random.default_rng(100 + i)
    x = rng.integers(-2, 3, (2, *hwc)).astype(np.float32)
    dy = rng.standard_normal((2, g.oh, g.ow, hwc[2])).astype(np.float32)
    for kind, args, ref in (("max", (x,), max_pool2d_ref(x, attrs)), ("avg", (x,), avg_pool2d_ref(x, attrs)),
                            ("max_grad", (x, dy), max_pool2d_grad_ref(x, dy, attrs)),
                            ("avg_grad", (dy,), avg_pool2d_grad_ref(dy, attrs, x.shape))):
        out = np.full(ref.shape, np.nan, np.float32)
        call(jm, names["pool", i, kind], [*args, out], 2, 2)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5, err_msg=f"{kind} {POOLS[i]}")


def _matmul_case(rng):
    """Random a @ b: sizes 1-70 (crossing the 12x32 tile), transposes, broadcast batch axes, maybe "N" first."""
    m, k, n = (int(v) for v in rng.integers(1, 71, 3))
    ta, tb = bool(rng.integers(2)), bool(rng.integers(2))
    batch_a = tuple(int(v) for v in rng.choice([1, 2, 3], int(rng.integers(0, 3))))
    batch_b = tuple(1 if rng.integers(3) == 0 else d for d in batch_a[len(batch_a) - int(rng.integers(0, len(batch_a) + 1)):])
    a = batch_a + ((k, m) if ta else (m, k))
    b = batch_b + ((n, k) if tb else (k, n))
    if rng.integers(2) and len(a) > 2 and (len(b) < len(a) or b[0] == a[0]):
        a = ("N",) + a[1:]     # leading batch symbol (run-time size a[0] -> batch)
        b = (("N",) + b[1:]) if len(b) == len(a) and b[0] != 1 else b
    return a, b, ta, tb


MATMULS = [_matmul_case(RNG) for _ in range(20)]


@pytest.fixture(scope="module")
def jit_mm(every_call_threaded):
    from kcompile.compiler.kernels.matmul import matmul_function
    mod, feats = ir.Module("random_matmuls"), host_features()
    fns = [matmul_function(mod, feats, "f32", a, b, ta, tb) for a, b, ta, tb in MATMULS]
    for fn in fns:
        fn.linkage = "external"
    return JitModule(mod), [fn.name for fn in fns]


@pytest.mark.parametrize("i", range(len(MATMULS)))
def test_random_matmul(jit_mm, i):
    jm, names = jit_mm
    a_shape, b_shape, ta, tb = MATMULS[i]
    batch = 3
    concrete = lambda s: tuple(batch if d == "N" else d for d in s)
    rng = np.random.default_rng(i)
    a = rng.standard_normal(concrete(a_shape)).astype(np.float32)
    b = rng.standard_normal(concrete(b_shape)).astype(np.float32)
    want = np.matmul(np.swapaxes(a, -1, -2) if ta else a, np.swapaxes(b, -1, -2) if tb else b)
    got = np.full(want.shape, np.nan, np.float32)
    call(jm, names[i], [a, b, got], batch, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(MATMULS[i]))
