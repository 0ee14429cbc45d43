"""The ops whose semantics are easy to get subtly wrong, checked against Keras 3 itself (JAX backend).

Padding splits, pooling counts, rounding, one_hot out of range, arg ties, and the gradient ops
(against jax.grad through keras.ops). Skipped where Keras or JAX is not installed.
"""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
jax = pytest.importorskip("jax")
if keras.backend.backend() != "jax":
    pytest.skip("these checks use the JAX backend of Keras", allow_module_level=True)

from ir_util import rand, run_op  # noqa: E402

RNG = np.random.default_rng(7)
TOL = dict(rtol=1e-5, atol=1e-5)
ops = keras.ops

CONV = [((2, 7, 5, 3), (3, 2, 3, 4), {"padding": "same", "strides": (2, 3)}),
        ((2, 8, 8, 3), (3, 3, 3, 2), {"padding": "valid", "strides": (2, 2)}),
        ((1, 9, 7, 2), (3, 3, 2, 3), {"padding": "same", "dilations": (2, 3)}),
        ((2, 6, 6, 4), (3, 3, 2, 6), {"padding": "same", "groups": 2})]


def _keras_conv(x, w, a):
    return ops.conv(x, w, strides=a.get("strides", 1), padding=a["padding"], dilation_rate=a.get("dilations", 1))


@pytest.mark.parametrize("xs,ws,attrs", CONV)
def test_conv2d_and_its_gradients_match_keras(xs, ws, attrs):
    x, w = rand(RNG, xs), rand(RNG, ws)
    y = np.asarray(_keras_conv(x, w, attrs))
    np.testing.assert_allclose(run_op("conv2d", [x, w], attrs)[0], y, **TOL)
    dy = rand(RNG, y.shape)
    dx, dw = jax.grad(lambda x, w: (_keras_conv(x, w, attrs) * dy).sum(), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(run_op("conv2d_input_grad", [dy, w], {**attrs, "input_shape": xs})[0], dx, **TOL)
    np.testing.assert_allclose(run_op("conv2d_filter_grad", [x, dy], {**attrs, "filter_shape": ws})[0], dw, **TOL)


def test_depthwise_conv_is_conv2d_with_groups():
    x, w = rand(RNG, (2, 7, 6, 3)), rand(RNG, (3, 3, 3, 2))  # depth multiplier 2
    y = ops.depthwise_conv(x, w, strides=2, padding="same")
    ours = run_op("conv2d", [x, w.reshape(3, 3, 1, 6)], {"groups": 3, "strides": (2, 2), "padding": "same"})[0]
    np.testing.assert_allclose(ours, y, **TOL)


@pytest.mark.parametrize("padding,strides,dilation", [("causal", 1, 2), ("causal", 2, 1), ("same", 3, 1),
                                                      ("valid", 1, 2)])
def test_conv1d_matches_keras_layer(padding, strides, dilation):
    x, w = rand(RNG, (2, 11, 3)), rand(RNG, (3, 3, 4))
    layer = keras.layers.Conv1D(4, 3, strides=strides, padding=padding, dilation_rate=dilation, use_bias=False)
    layer.build(x.shape)
    layer.set_weights([w])
    ours = run_op("conv1d", [x, w], {"padding": padding, "strides": strides, "dilations": dilation})[0]
    np.testing.assert_allclose(ours, layer(x), **TOL)


POOLS = [((2, 7, 5, 3), (3, 2), (2, 2), "same"), ((2, 8, 7, 2), (2, 2), (2, 3), "valid"),
         ((2, 6, 9, 1), (2, 4), (3, 3), "same")]


@pytest.mark.parametrize("xs,pool,strides,padding", POOLS)
def test_pooling_and_its_gradients_match_keras(xs, pool, strides, padding):
    x = rand(RNG, xs)
    attrs = {"pool_size": pool, "strides": strides, "padding": padding}
    for op, fn in (("max_pool2d", ops.max_pool), ("avg_pool2d", ops.average_pool)):
        y = np.asarray(fn(x, pool, strides, padding))
        np.testing.assert_allclose(run_op(op, [x], attrs)[0], y, **TOL)
        dy = rand(RNG, y.shape)
        dx = jax.grad(lambda x: (fn(x, pool, strides, padding) * dy).sum())(x)
        grad_in = [x, dy] if op == "max_pool2d" else [dy]
        extra = {} if op == "max_pool2d" else {"input_shape": xs}
        np.testing.assert_allclose(run_op(op + "_grad", grad_in, {**attrs, **extra})[0], dx, **TOL)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_pooling_1d_matches_keras(padding):
    x = rand(RNG, (2, 9, 3))
    for op, fn in (("max_pool1d", ops.max_pool), ("avg_pool1d", ops.average_pool)):
        ours = run_op(op, [x], {"pool_size": (2,), "strides": (2,), "padding": padding})[0]
        np.testing.assert_allclose(ours, fn(x, 2, 2, padding), **TOL)


def test_elementwise_semantics_match_keras():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -3.7, 0.0, 4.2], np.float32)
    for op, fn in (("round", ops.round), ("softplus", ops.softplus), ("sigmoid", ops.sigmoid), ("erf", ops.erf),
                   ("sign", ops.sign), ("floor", ops.floor), ("relu", ops.relu)):
        np.testing.assert_allclose(run_op(op, [x], {})[0], fn(x), rtol=1e-6, atol=1e-6, err_msg=op)
    logits = rand(RNG, (3, 5), lo=-5, hi=5)
    np.testing.assert_allclose(run_op("softmax", [logits], {})[0], ops.softmax(logits), **TOL)
    np.testing.assert_allclose(run_op("log_softmax", [logits], {})[0], ops.log_softmax(logits), **TOL)


def test_index_semantics_match_keras():
    labels = np.array([-1, 0, 3, 4, 2], np.int32)
    np.testing.assert_array_equal(run_op("one_hot", [labels], {"depth": 4})[0], ops.one_hot(labels, 4))
    ties = np.array([[1, 3, 3], [2, 2, 0]], np.float32)
    np.testing.assert_array_equal(run_op("argmax", [ties], {})[0], ops.argmax(ties, axis=-1))
    np.testing.assert_array_equal(run_op("argmin", [ties], {"axis": 0})[0], ops.argmin(ties, axis=0))
