"""Every elementwise op, native vs reference: odd sizes, broadcasting, several batch sizes, dtypes."""
import numpy as np
import pytest

from kcompile.ir import TensorType
from kcompile.ir.ops.elementwise import BINARY, UNARY

from native_util import assert_native_matches, one_op_graph, random_array

# Input ranges where the op is defined (the reference is NumPy; NaN cases are tested separately).
DOMAIN = {"log": (0.01, 50.0), "sqrt": (0.0, 50.0), "rsqrt": (0.01, 50.0), "log1p": (-0.9, 20.0),
          "reciprocal": (0.1, 5.0), "exp": (-80.0, 80.0), "expm1": (-20.0, 20.0), "softplus": (-30.0, 30.0),
          "sigmoid": (-30.0, 30.0), "tanh": (-9.0, 9.0), "erf": (-5.0, 5.0), "div": (0.5, 4.0),
          "pow": (0.1, 3.0)}
# Transcendentals are polynomial approximations: relative error a few ulp of f32.
TOL = {"exp": 2e-6, "expm1": 2e-6, "log": 2e-6, "log1p": 2e-6, "tanh": 2e-6, "erf": 2e-6,
       "sigmoid": 2e-6, "softplus": 2e-6, "pow": 1e-5}
KIND_DTYPES = {"float": ("f32", "f64"), "numeric": ("f32", "i32", "u8", "i64"), "bool": ("bool",),
               "any": ("f32", "i32", "bool")}


def _cases(table, kind_at):
    for name, row in sorted(table.items()):
        for dt in KIND_DTYPES[row[kind_at]]:
            yield pytest.param(name, dt, id=f"{name}-{dt}")


@pytest.mark.parametrize("op,dt", list(_cases(UNARY, 1)))
def test_unary(op, dt):
    g = one_op_graph(op, [TensorType(["N", 5, 13], dt)])
    lo, hi = DOMAIN.get(op, (-4.0, 4.0))
    rng = np.random.default_rng(0)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 5, 13), g.inputs[0].type.dtype.np, lo, hi)],
                          batches=(0, 1, 3, 17), rtol=TOL.get(op, 1e-6), atol=1e-6)


@pytest.mark.parametrize("op,dt", list(_cases(BINARY, 1)))
def test_binary_broadcast(op, dt):
    a_t, b_t = TensorType(["N", 3, 11], dt), TensorType([3, 1], dt)
    g = one_op_graph(op, [a_t, b_t])
    lo, hi = DOMAIN.get(op, (-4.0, 4.0))
    rng = np.random.default_rng(1)
    npd = a_t.dtype.np

    def inputs(n):
        return [random_array(rng, (n, 3, 11), npd, lo, hi), random_array(rng, (3, 1), npd, lo, hi)]

    assert_native_matches(g, inputs, rtol=TOL.get(op, 1e-6), atol=1e-6)


def test_where_and_cast():
    g = one_op_graph("where", [TensorType(["N", 9], "bool"), TensorType(["N", 9]), TensorType([9])])
    rng = np.random.default_rng(2)
    assert_native_matches(g, lambda n: [rng.random((n, 9)) < 0.5, random_array(rng, (n, 9), np.float32),
                                        random_array(rng, (9,), np.float32)])


@pytest.mark.parametrize("src,dst", [("f32", "i32"), ("f32", "bool"), ("i32", "f32"), ("bool", "f32"),
                                     ("f32", "f64"), ("f64", "f32"), ("i64", "i32"), ("u8", "f32"),
                                     ("i32", "u8"), ("i8", "i64")])
def test_cast(src, dst):
    g = one_op_graph("cast", [TensorType(["N", 19], src)], {"dtype": dst})
    rng = np.random.default_rng(3)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 19), g.inputs[0].type.dtype.np, -9, 9)])


def test_nan_and_inf_follow_numpy():
    g = one_op_graph("exp", [TensorType([8])])
    x = np.array([np.nan, np.inf, -np.inf, 100.0, -120.0, 0.0, 88.5, -87.0], np.float32)
    assert_native_matches(g, lambda n: [x], batches=(None,), rtol=2e-6)
    g = one_op_graph("log", [TensorType([6])])
    x = np.array([np.nan, np.inf, 0.0, -1.0, 1.0, 1e-30], np.float32)
    assert_native_matches(g, lambda n: [x], batches=(None,), rtol=2e-6)
    g = one_op_graph("maximum", [TensorType([3]), TensorType([3])])
    assert_native_matches(g, lambda n: [np.array([np.nan, 1, 2], np.float32), np.array([0, np.nan, 3], np.float32)],
                          batches=(None,))


def test_sin_cos_polynomials_hold_over_a_wide_range():
    g = one_op_graph("sin", [TensorType([4099])])
    x = np.concatenate([np.linspace(-9000, 9000, 4090), [np.nan, np.inf, -np.inf, 0, 1e-30, 1e4, -3e5, 1e7, 0.5]])
    assert_native_matches(g, lambda n: [x.astype(np.float32)], batches=(None,), rtol=0, atol=2e-7)
    g = one_op_graph("cos", [TensorType([4099])])
    assert_native_matches(g, lambda n: [x.astype(np.float32)], batches=(None,), rtol=0, atol=2e-7)


def test_scalar_and_empty_shapes():
    g = one_op_graph("add", [TensorType([]), TensorType([])])
    assert_native_matches(g, lambda n: [np.float32(1.5), np.float32(2.25)], batches=(None,))
    g = one_op_graph("relu", [TensorType(["N", 4])])
    assert_native_matches(g, lambda n: [np.zeros((n, 4), np.float32)], batches=(0, 2))
