"""ConvLSTM1D/2D/3D against Keras 3 (jax) on the same weights: forward (eager calls) for
each rank and option, and for ConvLSTM2D native predictions, one native SGD step (loss and weights)
and the ONNX export run by onnxruntime; argument errors name the layer."""
import os

import numpy as np
import pytest

import kcompile as kc

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("Keras parity tests need KERAS_BACKEND=jax", allow_module_level=True)

from test_keras_parity_conv_nd import check_parity  # noqa: E402  (same Keras twin harness)

RNG = np.random.default_rng(5)


def _twins(build):
    ours, theirs = build(kc.layers, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    weights = [RNG.standard_normal(w.shape).astype("float32") * 0.3 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


@pytest.mark.parametrize("layer,x_shape,kwargs", [
    ("ConvLSTM1D", (2, 4, 7, 3), dict(filters=3, kernel_size=2, dilation_rate=2, return_sequences=True)),
    ("ConvLSTM2D", (2, 3, 6, 5, 2), dict(filters=2, kernel_size=(3, 2), strides=(2, 1), go_backwards=True)),
    ("ConvLSTM2D", (2, 3, 2, 5, 4), dict(filters=2, kernel_size=2, padding="same", data_format="channels_first",
                                         return_sequences=True, return_state=True, unit_forget_bias=False)),
    ("ConvLSTM3D", (1, 2, 3, 4, 3, 2), dict(filters=2, kernel_size=2, padding="same")),
])
def test_conv_lstm_forward_matches_keras(layer, x_shape, kwargs):
    def build(L, Input, Model):
        inp = Input(shape=x_shape[1:])
        out = getattr(L, layer)(**kwargs)(inp)
        return Model(inp, out)
    ours, theirs = _twins(build)
    x = RNG.standard_normal(x_shape).astype("float32")
    got, want = ours(x), theirs(x)   # eager: kcompile's reference interpreter
    got, want = (list(t) if isinstance(t, (list, tuple)) else [t] for t in (got, want))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


def test_conv_lstm2d_native_training_and_onnx(tmp_path):
    def build(L, Input, Model):
        inp = Input(shape=(3, 5, 4, 2))
        x = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(inp)
        x = L.ConvLSTM2D(2, 2, strides=2, activation="relu")(x)
        return Model(inp, L.Dense(2)(L.Flatten()(x)))
    check_parity(build, (2, 3, 5, 4, 2), tmp_path)


@pytest.mark.parametrize("kwargs,words", [
    (dict(filters=2, kernel_size=3, dropout=0.2), "dropout, recurrent_dropout and stateful=True are not supported"),
    (dict(filters=2, kernel_size=3, strides=2, dilation_rate=2), "strides > 1 is not supported with dilation_rate"),
    (dict(filters=2, kernel_size=3, padding="causal"), "padding"),
    (dict(filters=0, kernel_size=3), "filters"),
])
def test_conv_lstm_bad_arguments_name_the_layer(kwargs, words):
    with pytest.raises((ValueError, NotImplementedError), match="'bad'") as info:
        kc.layers.ConvLSTM2D(name="bad", **kwargs)
    assert words in str(info.value)


def test_conv_lstm_bad_inputs_name_the_layer():
    with pytest.raises(ValueError, match="layer 'bad' .*rank 5"):
        kc.layers.ConvLSTM2D(2, 3, name="bad")(kc.Input(shape=(4, 5, 3)))
    with pytest.raises(ValueError, match="layer 'bad2'.*too small for kernel"):
        kc.layers.ConvLSTM2D(2, 4, name="bad2")(kc.Input(shape=(4, 3, 3, 1)))
