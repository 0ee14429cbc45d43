"""Every layer: output shape, and reference-interpreter predictions vs an independent NumPy formula."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

from model_helpers import conv2d_np, predict_ref, rand

TOL = dict(rtol=1e-5, atol=1e-5)


def seq(shape, *ls):
    return kc.Sequential([kc.Input(shape=shape), *ls])


def test_dense_rank2_and_rank3():
    m = seq((5,), layers.Dense(3, activation="relu"))
    x = rand(4, 5)
    k, b = m.get_weights()
    assert k.shape == (5, 3) and b.shape == (3,)
    m.set_weights([rand(5, 3, seed=1), rand(3, seed=2)])
    k, b = m.get_weights()
    np.testing.assert_allclose(predict_ref(m, x), np.maximum(x @ k + b, 0), **TOL)
    m3 = seq((7, 5), layers.Dense(2))
    x3 = rand(2, 7, 5)
    k, b = m3.get_weights()
    assert m3.output_shape == (None, 7, 2)
    np.testing.assert_allclose(predict_ref(m3, x3), x3 @ k + b, **TOL)


@pytest.mark.parametrize("name,fn", [
    ("linear", lambda x: x), ("relu", lambda x: np.maximum(x, 0)), ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", np.tanh), ("elu", lambda x: np.where(x > 0, x, np.expm1(x))),
    ("selu", lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x))),
    ("gelu", lambda x: 0.5 * x * (1 + np.vectorize(__import__("math").erf)(x / np.sqrt(2)))),
    ("leaky_relu", lambda x: np.where(x >= 0, x, 0.2 * x)), ("softplus", lambda x: np.log1p(np.exp(x))),
    ("swish", lambda x: x / (1 + np.exp(-x))), ("silu", lambda x: x / (1 + np.exp(-x))),
    ("exponential", np.exp), ("hard_sigmoid", lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    ("softmax", lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
])
def test_activations_by_name_and_function(name, fn):
    x = rand(3, 6).astype(np.float64)
    m = seq((6,), layers.Activation(name))
    np.testing.assert_allclose(predict_ref(m, x.astype(np.float32)), fn(x), rtol=1e-5, atol=1e-6)
    out = kc.activations.get(name)(kc.ops.convert_to_tensor(x.astype(np.float32)))
    np.testing.assert_allclose(out.numpy(), fn(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3), dict(kernel_size=(2, 3), strides=2, padding="same"),
    dict(kernel_size=3, dilation_rate=2, padding="same"), dict(kernel_size=1, groups=2),
])
def test_conv2d(kw):
    layer = layers.Conv2D(4, activation=None, **kw)
    m = seq((9, 8, 2), layer)
    x = rand(2, 9, 8, 2)
    k, b = m.get_weights()
    ks = layer.kernel_size
    assert k.shape == ks + (2 // layer.groups, 4) and b.shape == (4,)
    want = conv2d_np(x, k, layer.strides, layer.padding, layer.dilation_rate, layer.groups) + b
    assert m.output_shape == (None,) + want.shape[1:]
    np.testing.assert_allclose(predict_ref(m, x), want, **TOL)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d(padding):
    m = seq((10, 3), layers.Conv1D(5, 3, padding=padding, dilation_rate=2 if padding == "causal" else 1))
    x = rand(2, 10, 3)
    k, b = m.get_weights()
    d = 2 if padding == "causal" else 1
    x2 = np.pad(x, [(0, 0), (4, 0), (0, 0)]) if padding == "causal" else x
    want = conv2d_np(x2[:, None], k[None], (1, 1), "valid" if padding == "causal" else padding, (1, d))[:, 0] + b
    np.testing.assert_allclose(predict_ref(m, x), want, **TOL)


def test_depthwise_and_separable_conv2d():
    x = rand(2, 7, 7, 3)
    dw = seq((7, 7, 3), layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"))
    k, b = dw.get_weights()
    assert k.shape == (3, 3, 3, 2) and b.shape == (6,)
    want = np.concatenate([conv2d_np(x[..., c:c + 1], k[:, :, c:c + 1, :], padding="same") for c in range(3)], -1)
    np.testing.assert_allclose(predict_ref(dw, x), want + b, **TOL)
    sep = seq((7, 7, 3), layers.SeparableConv2D(4, 3, depth_multiplier=2))
    dk, pk, b = sep.get_weights()
    assert dk.shape == (3, 3, 3, 2) and pk.shape == (1, 1, 6, 4)
    mid = np.concatenate([conv2d_np(x[..., c:c + 1], dk[:, :, c:c + 1, :]) for c in range(3)], -1)
    np.testing.assert_allclose(predict_ref(sep, x), mid @ pk[0, 0] + b, **TOL)


def _pool_np(x, size, stride, fn):
    oh, ow = (x.shape[1] - size) // stride + 1, (x.shape[2] - size) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = fn(x[:, i * stride:i * stride + size, j * stride:j * stride + size], axis=(1, 2))
    return out


def test_pooling_layers():
    x = rand(2, 6, 7, 3)
    np.testing.assert_allclose(predict_ref(seq((6, 7, 3), layers.MaxPooling2D()), x), _pool_np(x, 2, 2, np.max))
    np.testing.assert_allclose(predict_ref(seq((6, 7, 3), layers.AveragePooling2D(3, strides=1)), x),
                               _pool_np(x, 3, 1, np.mean), **TOL)
    same = seq((6, 7, 3), layers.MaxPooling2D(padding="same"))
    assert same.output_shape == (None, 3, 4, 3)
    x1 = rand(2, 9, 4)
    np.testing.assert_allclose(predict_ref(seq((9, 4), layers.MaxPooling1D(3)), x1),
                               _pool_np(x1[:, :, None], 1, 1, np.max)[:, :, 0].reshape(2, 3, 3, 4).max(2))
    np.testing.assert_allclose(predict_ref(seq((9, 4), layers.AveragePooling1D()), x1),
                               x1[:, :8].reshape(2, 4, 2, 4).mean(2), **TOL)
    np.testing.assert_allclose(predict_ref(seq((6, 7, 3), layers.GlobalAveragePooling2D()), x), x.mean((1, 2)), **TOL)
    np.testing.assert_allclose(predict_ref(seq((6, 7, 3), layers.GlobalMaxPooling2D(keepdims=True)), x),
                               x.max((1, 2), keepdims=True))
    np.testing.assert_allclose(predict_ref(seq((9, 4), layers.GlobalAveragePooling1D()), x1), x1.mean(1), **TOL)
    np.testing.assert_allclose(predict_ref(seq((9, 4), layers.GlobalMaxPooling1D()), x1), x1.max(1))


def _set_bn(m, n):
    g, b, mm, mv = rand(n, seed=1), rand(n, seed=2), rand(n, seed=3), np.abs(rand(n, seed=4)) + 0.5
    m.set_weights([g, b, mm, mv])
    return g, b, mm, mv


def test_batch_normalization_inference_and_training_updates():
    m = seq((5, 4), layers.BatchNormalization())
    names = [w.path.split("/")[-1] for w in m.weights]
    assert names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.path.split("/")[-1] for w in m.non_trainable_weights] == ["moving_mean", "moving_variance"]
    g, b, mm, mv = _set_bn(m, 4)
    x = rand(3, 5, 4)
    np.testing.assert_allclose(predict_ref(m, x), (x - mm) / np.sqrt(mv + 1e-3) * g + b, **TOL)
    # training: batch statistics, and moving stats updated with momentum 0.99
    from kcompile.ir import GraphBuilder, TensorType
    from kcompile.runtime.reference import run
    bld = GraphBuilder("t")
    xin = bld.input("x", TensorType(["N", 5, 4]))
    from kcompile.frontend.trace import trace_model
    tr = trace_model(m, bld, [xin], training=True)
    paths = sorted(tr.state_updates)
    g2 = bld.build(tr.outputs + [tr.state_updates[p] for p in paths])
    y, *new = run(g2, [x])
    mean, var = x.mean((0, 1)), x.var((0, 1))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3) * g + b, **TOL)
    got = dict(zip(paths, new))
    bn = m.layers[0]
    np.testing.assert_allclose(got[bn.moving_mean.path], 0.99 * mm + 0.01 * mean, **TOL)
    np.testing.assert_allclose(got[bn.moving_variance.path], 0.99 * mv + 0.01 * var, **TOL)


def test_batch_normalization_eager_training_assigns_and_frozen_bn_uses_moving_stats():
    m = seq((4,), layers.BatchNormalization(momentum=0.5))
    _, _, mm, _ = _set_bn(m, 4)
    x = rand(8, 4)
    m(x, training=True)
    np.testing.assert_allclose(m.layers[0].moving_mean.numpy(), 0.5 * mm + 0.5 * x.mean(0), **TOL)
    m.layers[0].trainable = False
    before = m.layers[0].moving_mean.numpy().copy()
    m(x, training=True)
    np.testing.assert_array_equal(m.layers[0].moving_mean.numpy(), before)


def test_layer_normalization():
    m = seq((3, 6), layers.LayerNormalization())
    g, b = rand(6, seed=1), rand(6, seed=2)
    m.set_weights([g, b])
    x = rand(2, 3, 6)
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * g + b
    np.testing.assert_allclose(predict_ref(m, x), want, **TOL)


def test_embedding():
    m = kc.Sequential([kc.Input(shape=(5,), dtype="int32"), layers.Embedding(10, 3)])
    (e,) = m.get_weights()
    assert e.shape == (10, 3) and np.abs(e).max() <= 0.05
    idx = np.random.default_rng(0).integers(0, 10, (4, 5)).astype(np.int32)
    np.testing.assert_allclose(predict_ref(m, idx), e[idx])
    assert m.output_shape == (None, 5, 3)


def test_merge_layers():
    a, b = kc.Input(shape=(4,)), kc.Input(shape=(4,))
    outs = [layers.Add()([a, b]), layers.Subtract()([a, b]), layers.Multiply()([a, b]),
            layers.Average()([a, b]), layers.Maximum()([a, b]), layers.Minimum()([a, b]),
            layers.Concatenate()([a, b])]
    m = kc.Model([a, b], outs)
    x, y = rand(3, 4, seed=1), rand(3, 4, seed=2)
    got = predict_ref(m, x, y)
    want = [x + y, x - y, x * y, (x + y) / 2, np.maximum(x, y), np.minimum(x, y), np.concatenate([x, y], -1)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **TOL)


def test_reshape_flatten_rescaling():
    x = rand(2, 3, 4)
    np.testing.assert_allclose(predict_ref(seq((3, 4), layers.Flatten()), x), x.reshape(2, 12))
    m = seq((3, 4), layers.Reshape((2, -1)))
    assert m.output_shape == (None, 2, 6)
    np.testing.assert_allclose(predict_ref(m, x), x.reshape(2, 2, 6))
    np.testing.assert_allclose(predict_ref(seq((3, 4), layers.Rescaling(1 / 255.0, offset=-1)), x),
                               x / 255.0 - 1, **TOL)


def test_dropout_identity_in_inference_and_inverted_in_training():
    m = seq((1000,), layers.Dropout(0.3))
    x = np.ones((4, 1000), np.float32)
    np.testing.assert_array_equal(predict_ref(m, x), x)
    from kcompile.runtime.reference import run
    g = m.forward_graph(training=True)
    y1 = run(g, [x, np.int64(1)])[0]
    y2 = run(g, [x, np.int64(2)])[0]
    kept = y1 != 0
    np.testing.assert_allclose(y1[kept], 1 / 0.7, rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.03
    assert (y1 != y2).any()


def test_dropout_training_trace_without_counter_is_a_clear_error():
    from kcompile.frontend.trace import trace_model
    from kcompile.ir import GraphBuilder, TensorType
    m = seq((4,), layers.Dropout(0.5))
    b = GraphBuilder("t")
    with pytest.raises(ValueError, match="dropout.*rng_counter|rng_counter"):
        trace_model(m, b, [b.input("x", TensorType(["N", 4]))], training=True)


def test_shape_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"dense_x.*\(None, 5\)"):
        d = layers.Dense(3, name="dense_x")
        d(kc.Input(shape=(4,)))
        d(kc.Input(shape=(5,)))
    with pytest.raises(ValueError, match=r"add_x.*\(None, 3\).*\(None, 4\)"):
        layers.Add(name="add_x")([kc.Input(shape=(3,)), kc.Input(shape=(4,))])
    with pytest.raises(ValueError, match=r"conv_x.*rank 4.*\(None, 8\)"):
        layers.Conv2D(2, 3, name="conv_x")(kc.Input(shape=(8,)))


def test_regularizers_reported_as_trace_losses():
    m = seq((3,), layers.Dense(2, kernel_regularizer="l2", bias_regularizer=kc.regularizers.l1(0.5),
                               activity_regularizer=kc.regularizers.L1L2(l1=0.1, l2=0.2)))
    k, b = rand(3, 2, seed=1), rand(2, seed=2)
    m.set_weights([k, b])
    from kcompile.frontend.trace import trace_model
    from kcompile.ir import GraphBuilder, TensorType
    from kcompile.runtime.reference import run
    bld = GraphBuilder("t")
    tr = trace_model(m, bld, [bld.input("x", TensorType(["N", 3]))], training=True)
    x = rand(4, 3)
    losses = run(bld.build(tr.losses), [x])
    y = x @ k + b
    want = sorted([0.01 * (k ** 2).sum(), 0.5 * np.abs(b).sum(), (0.1 * np.abs(y).sum() + 0.2 * (y ** 2).sum()) / 4])
    np.testing.assert_allclose(sorted(float(v) for v in losses), want, rtol=1e-5)


def test_trainable_false_moves_weights():
    m = seq((3,), layers.Dense(4), layers.BatchNormalization(), layers.Dense(2))
    assert len(m.trainable_weights) == 6 and len(m.non_trainable_weights) == 2
    m.layers[0].trainable = False
    assert len(m.trainable_weights) == 4 and len(m.non_trainable_weights) == 4
    assert [w.path for w in m.weights][:2] == [m.layers[0].kernel.path, m.layers[0].bias.path]


def test_initializers_distributions_and_seeds():
    init = kc.initializers
    w = init.GlorotUniform(seed=1)((200, 300))
    assert np.abs(w).max() <= np.sqrt(6 / 500) and abs(w.std() - np.sqrt(2 / 500)) < 0.002
    np.testing.assert_array_equal(w, init.GlorotUniform(seed=1)((200, 300)))
    he = init.HeNormal(seed=2)((3, 3, 16, 32))
    assert abs(he.std() - np.sqrt(2 / (9 * 16))) < 0.01 and np.abs(he).max() <= 2 * np.sqrt(2 / 144) / 0.8796 + 1e-6
    assert abs(init.RandomNormal(stddev=0.5, seed=3)((100000,)).std() - 0.5) < 0.01
    u = init.RandomUniform(-1, 2, seed=4)((10000,))
    assert u.min() >= -1 and u.max() <= 2
    assert np.abs(init.TruncatedNormal(seed=5)((10000,))).max() <= 0.1
    assert (init.get("zeros")((2,)) == 0).all() and (init.get("ones")((2,)) == 1).all()
    assert (init.Constant(3.0)((2, 2)) == 3).all()


def test_custom_layer_with_add_weight_and_nested_sublayer():
    class Scale(kc.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.inner = layers.Dense(3, name="inner")

        def build(self, input_shape):
            self.s = self.add_weight(shape=(3,), initializer="ones", name="s")
            self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

        def call(self, x):
            return kc.ops.multiply(self.inner(x), self.s)

    layer = Scale(name="scale")
    m = seq((4,), layer)
    assert [w.path for w in m.weights] == ["scale/s", "scale/count", "scale/inner/kernel", "scale/inner/bias"]
    assert [w.path for w in m.trainable_weights] == ["scale/s", "scale/inner/kernel", "scale/inner/bias"]
    x = rand(2, 4)
    k, b = layer.inner.get_weights()
    np.testing.assert_allclose(predict_ref(m, x), x @ k + b, **TOL)


@pytest.mark.parametrize("make,ref", [
    (lambda: layers.ZeroPadding2D(((1, 0), (2, 1))), lambda x: np.pad(x, [(0, 0), (1, 0), (2, 1), (0, 0)])),
    (lambda: layers.UpSampling2D((2, 3)), lambda x: x.repeat(2, 1).repeat(3, 2)),
    (lambda: layers.Cropping2D(((1, 0), (1, 1))), lambda x: x[:, 1:, 1:-1]),
    (lambda: layers.Permute((2, 1, 3)), lambda x: x.transpose(0, 2, 1, 3)),
    (lambda: layers.ReLU(max_value=0.5), lambda x: np.clip(x, 0, 0.5)),
    (lambda: layers.LeakyReLU(), lambda x: np.where(x >= 0, x, 0.3 * x)),
    (lambda: layers.ELU(0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    (lambda: layers.Softmax(), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    (lambda: layers.Lambda(lambda t: t * 2, name="double"), lambda x: 2 * x),
    (lambda: layers.Identity(), lambda x: x),
], ids=["zeropad2d", "upsample2d", "crop2d", "permute", "relu_max", "leaky", "elu", "softmax", "lambda", "identity"])
def test_reshaping_and_activation_layers(make, ref):
    x = rand(2, 3, 4, 2)
    np.testing.assert_allclose(predict_ref(seq((3, 4, 2), make()), x), ref(x), rtol=1e-6, atol=1e-6)


def test_one_dimensional_reshaping_layers():
    x = rand(2, 5, 2)
    m = seq((5, 2), layers.UpSampling1D(2), layers.ZeroPadding1D(1), layers.Cropping1D((0, 2)))
    np.testing.assert_allclose(predict_ref(m, x), np.pad(x.repeat(2, 1), [(0, 0), (1, 1), (0, 0)])[:, :-2])
    v = rand(2, 5)
    np.testing.assert_allclose(predict_ref(seq((5,), layers.RepeatVector(3)), v), np.repeat(v[:, None], 3, 1))


def test_compute_output_shape():
    assert layers.Conv2D(4, 3, strides=2).compute_output_shape((None, 9, 9, 3)) == (None, 4, 4, 4)
    assert layers.Dense(5).compute_output_shape((7, 2, 3)) == (7, 2, 5)


@pytest.mark.parametrize("make", [
    lambda: kc.layers.DepthwiseConv2D(3, depthwise_constraint="non_neg"),
    lambda: kc.layers.SeparableConv2D(4, 3, pointwise_constraint="non_neg"),
    lambda: kc.layers.BatchNormalization(gamma_constraint="non_neg"),
    lambda: kc.layers.LayerNormalization(beta_constraint="non_neg"),
])
def test_weight_constraints_reach_the_weights_and_the_config(make):
    layer = make()
    config = layer.get_config()
    given = [k for k, v in config.items() if k.endswith("_constraint") and v is not None]
    assert len(given) == 1 and config[given[0]]["class_name"] == "NonNeg"
    assert isinstance(type(layer).from_config(config).__dict__[given[0]], kc.constraints.NonNeg)
