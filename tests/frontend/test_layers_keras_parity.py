"""Parity with Keras 3 (jax backend), where installed: the same architecture and weights give the same
predictions (1e-5), get_weights orders and shapes agree, and summary() prints the same table."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

import kcompile as kc  # noqa: E402

from model_helpers import predict_ref  # noqa: E402


def _both(build):
    """build(L, Input, Model) with L = a layers module; returns (kcompile model, keras model)."""
    return build(kc.layers, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)


def _check(build, *shapes, int_inputs=None, atol=1e-5):
    ours, theirs = _both(build)
    ws = ours.get_weights()
    assert [w.shape for w in ws] == [tuple(w.shape) for w in theirs.get_weights()]
    rng = np.random.default_rng(0)
    ws = [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if "variance" in v.path
          else rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w, v in zip(ws, ours.weights)]
    ours.set_weights(ws)
    theirs.set_weights(ws)
    xs = [rng.integers(0, int_inputs, s).astype(np.int32) if int_inputs else rng.standard_normal(s).astype(np.float32)
          for s in shapes]
    got = predict_ref(ours, *xs)
    want = theirs.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=atol)
    eager = ours(xs if len(xs) > 1 else xs[0])
    first = eager[0] if isinstance(eager, (list, tuple)) else eager
    np.testing.assert_allclose(first.numpy(), np.asarray(want[0] if isinstance(want, list) else want),
                               rtol=1e-5, atol=atol)


def test_mlp_all_activations():
    def build(L, Input, Model):
        x = inp = Input(shape=(6,))
        for act in ["relu", "sigmoid", "tanh", "elu", "selu", "gelu", "leaky_relu", "softplus", "swish",
                    "hard_sigmoid", "linear"]:
            x = L.Dense(5, activation=act)(x)
        return Model(inp, L.Dense(3, activation="softmax")(x))
    _check(build, (4, 6))


def test_convnet_with_batchnorm_and_pooling():
    def build(L, Input, Model):
        inp = Input(shape=(12, 11, 3))
        x = L.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inp)
        x = L.BatchNormalization()(x)
        x = L.Conv2D(4, (2, 3), dilation_rate=2, groups=2)(x)
        x = L.AveragePooling2D(2, padding="same")(x)
        x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
        x = L.SeparableConv2D(5, 2, padding="same", activation="tanh")(x)
        x = L.MaxPooling2D(1)(x)
        a = L.GlobalAveragePooling2D()(x)
        b = L.GlobalMaxPooling2D()(x)
        x = L.Concatenate()([a, b])
        x = L.Dropout(0.5)(x)
        return Model(inp, L.Dense(2)(L.Flatten()(L.Reshape((2, 5))(x))))
    _check(build, (2, 12, 11, 3))


def test_conv1d_causal_pooling_layernorm():
    def build(L, Input, Model):
        inp = Input(shape=(10, 4))
        x = L.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu")(inp)
        x = L.MaxPooling1D(2)(x)
        x = L.Conv1D(5, 2, padding="same")(x)
        x = L.AveragePooling1D(2, strides=1)(x)
        x = L.LayerNormalization()(x)
        x = L.Dense(3)(x)
        return Model(inp, [L.GlobalAveragePooling1D()(x), L.GlobalMaxPooling1D()(x)])
    _check(build, (3, 10, 4))


def test_embedding_model():
    def build(L, Input, Model):
        inp = Input(shape=(7,), dtype="int32")
        x = L.Embedding(20, 4)(inp)
        x = L.GlobalAveragePooling1D()(x)
        return Model(inp, L.Dense(1, activation="sigmoid")(x))
    _check(build, (5, 7), int_inputs=20)


def test_functional_merges_two_inputs_two_outputs():
    def build(L, Input, Model):
        a, b = Input(shape=(5,)), Input(shape=(5,))
        ha, hb = L.Dense(4)(a), L.Dense(4)(b)
        merged = [L.Add()([ha, hb]), L.Subtract()([ha, hb]), L.Multiply()([ha, hb]), L.Average()([ha, hb]),
                  L.Maximum()([ha, hb]), L.Minimum()([ha, hb])]
        x = L.Concatenate()(merged)
        return Model([a, b], [L.Dense(2, activation="softmax")(x), L.Rescaling(0.5, offset=1.0)(L.Dense(1)(x))])
    _check(build, (3, 5), (3, 5))


def test_sequential_get_weights_order_and_summary_text(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")

    def build(mod):
        return mod.Sequential([mod.layers.Dense(16, activation="relu", input_shape=(8,), name="d0"),
                               mod.layers.BatchNormalization(name="bn"), mod.layers.Dropout(0.2, name="drop"),
                               mod.layers.Dense(3, activation="softmax", name="out")], name="seq")
    ours, theirs = build(kc), build(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [w.path.split("/")[-1] for w in ours.weights] == [w.path.split("/")[-1] for w in theirs.weights]
    assert ours.count_params() == theirs.count_params()
    lines_ours, lines_keras = [], []
    ours.summary(print_fn=lines_ours.append)
    theirs.summary(print_fn=lambda s, line_break=True: lines_keras.append(s))
    assert "\n".join(lines_ours).strip() == "\n".join(lines_keras).strip()


def test_reshaping_and_activation_layers():
    def build(L, Input, Model):
        inp = Input(shape=(5, 6, 2))
        x = L.ZeroPadding2D(((1, 0), (0, 2)))(inp)
        x = L.UpSampling2D((2, 1))(x)
        x = L.Cropping2D(((1, 2), (1, 0)))(x)
        x = L.Conv2D(3, 3)(x)
        x = L.LeakyReLU()(x)
        x = L.ReLU(max_value=1.0)(L.ELU()(x))
        x = L.Permute((2, 1, 3))(x)
        return Model(inp, L.Softmax()(L.Flatten()(x)))
    _check(build, (2, 5, 6, 2))


def test_multi_input_summary_text_matches_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")

    def build(mod):
        L = mod.layers
        t, b = mod.Input(shape=(10,), name="title"), mod.Input(shape=(10,), name="text_body")
        g = mod.Input(shape=(4,), name="tags")
        f = L.Dense(8, activation="relu", name="mix")(L.Concatenate(name="concat")([t, b, g]))
        p = L.Dense(1, activation="sigmoid", name="priority")(f)
        d = L.Dense(3, activation="softmax", name="department")(f)
        return mod.Model(inputs=[t, b, g], outputs=[p, d], name="ticket")
    ours, theirs = [], []
    build(kc).summary(print_fn=ours.append)
    build(keras).summary(print_fn=lambda s, line_break=True: theirs.append(s))
    assert "\n".join(ours).strip() == "\n".join(theirs).strip()
