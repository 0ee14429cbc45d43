"""Transposed, 3-D and channels_first convolution/pooling layers against Keras 3 (jax backend) on the
same weights: predictions, one SGD step (loss and weights) and the ONNX export run by onnxruntime.
The transposed convs run natively; the 3-D and channels_first layers, built from ops whose native
forms and gradients are tested elsewhere, run in the reference interpreter (no LLVM compile: the
test suite's time budget)."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("Keras parity tests need KERAS_BACKEND=jax", allow_module_level=True)
ort = pytest.importorskip("onnxruntime")

import kcompile as kc  # noqa: E402
from kcompile.compiler.onnx_export import export_onnx  # noqa: E402

from model_helpers import predict_ref  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def check_parity(build, x_shape, tmp_path, atol=1e-5, backend="native"):
    """build(L, Input, Model) -> model ending in a vector per example; compare with Keras."""
    rng = np.random.default_rng(3)
    ours, theirs = build(kc.layers, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    weights = [rng.standard_normal(w.shape).astype("float32") * 0.3 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.standard_normal(x_shape).astype("float32")
    want = np.asarray(theirs.predict(x, verbose=0))
    got = ours.predict(x, verbose=0) if backend == "native" else predict_ref(ours, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)

    path = export_onnx(ours.forward_graph(), tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], want, rtol=1e-5, atol=atol)

    y = rng.standard_normal(want.shape).astype("float32")
    losses = []
    for lib, model in ((kc, ours), (keras, theirs)):
        model.compile(lib.optimizers.SGD(0.05), "mse", **({"backend": backend} if lib is kc else {}))
        losses.append(model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _head(L, x):
    return L.Dense(3)(L.Flatten()(x))


def test_conv2d_transpose_stack(tmp_path):
    def build(L, Input, Model):
        inp = Input(shape=(5, 6, 3))
        x = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(inp)
        x = L.Conv2DTranspose(3, (2, 3), strides=(2, 3), output_padding=(1, 2))(x)
        x = L.Conv2DTranspose(2, 3, dilation_rate=2, padding="same", use_bias=False)(x)
        x = L.Conv2DTranspose(2, (4, 1), strides=(2, 1), padding="same", output_padding=(1, 0))(x)
        return Model(inp, _head(L, x))
    check_parity(build, (4, 5, 6, 3), tmp_path)


def test_conv3d_pooling3d_stack(tmp_path):
    def build(L, Input, Model):
        inp = Input(shape=(6, 11, 6, 2))
        x = L.Conv3D(4, 3, strides=(2, 2, 1), padding="same", activation="relu")(inp)
        x = L.Conv3D(3, (2, 3, 2), dilation_rate=(1, 2, 1))(x)
        x = L.ZeroPadding3D(((1, 0), (0, 2), 1))(x)
        x = L.MaxPooling3D((2, 2, 3), strides=(1, 2, 1), padding="same")(x)
        x = L.UpSampling3D((1, 2, 2))(x)
        x = L.Cropping3D(((0, 1), 1, (1, 0)))(x)
        x = L.AveragePooling3D(2, padding="same")(x)
        x = L.Conv3D(2, 1, strides=2, padding="same")(x)
        a, b = L.GlobalAveragePooling3D()(x), L.GlobalMaxPooling3D()(x)
        return Model(inp, L.Dense(3)(L.Concatenate()([a, b, L.Flatten()(x)])))
    check_parity(build, (3, 6, 11, 6, 2), tmp_path, backend="reference")


def test_channels_first_layers(tmp_path):
    def build(L, Input, Model):
        cf = dict(data_format="channels_first")
        inp = Input(shape=(3, 9, 8))
        x = L.Conv2D(4, 3, padding="same", activation="relu", **cf)(inp)
        x = L.BatchNormalization(axis=1)(x)
        x = L.MaxPooling2D(2, **cf)(x)
        x = L.ZeroPadding2D(1, **cf)(x)
        x = L.Conv2DTranspose(3, 3, strides=2, **cf)(x)
        x = L.Cropping2D(((1, 0), (0, 2)), **cf)(x)
        x = L.UpSampling2D(2, **cf)(x)
        x = L.AveragePooling2D(3, strides=2, padding="same", **cf)(x)
        x = L.SeparableConv2D(3, 2, **cf)(x) if hasattr(L, "SeparableConv2D") else x
        a = L.GlobalAveragePooling2D(**cf)(x)
        b = L.GlobalMaxPooling2D(keepdims=True, **cf)(x)
        return Model(inp, L.Dense(3)(L.Concatenate()([a, L.Flatten()(b), L.Flatten(**cf)(x)])))
    check_parity(build, (2, 3, 9, 8), tmp_path, backend="reference")


def test_channels_first_1d_3d_and_conv1d_transpose(tmp_path):
    def build(L, Input, Model):
        cf = dict(data_format="channels_first")
        inp = Input(shape=(2, 5, 6, 4))
        x = L.Conv3D(3, 2, padding="same", **cf)(inp)
        x = L.MaxPooling3D(2, padding="same", **cf)(x)
        x = L.Reshape((3, 3 * 3 * 2))(x)
        x = L.Conv1D(4, 2, **cf)(x)
        x = L.Conv1DTranspose(2, 3, strides=2, **cf)(x)
        x = L.MaxPooling1D(2, **cf)(x)
        x = L.Conv1DTranspose(3, 4, strides=3, output_padding=2, activation="tanh")(x)   # channels_last again
        x = L.Conv1DTranspose(2, 2, dilation_rate=3, padding="same", use_bias=False)(x)
        return Model(inp, L.Dense(2)(L.GlobalAveragePooling1D(**cf)(x)))
    check_parity(build, (2, 2, 5, 6, 4), tmp_path, backend="reference")


@pytest.mark.parametrize("x_shape,k_shape,kwargs", [
    ((2, 5, 4, 3), (3, 2, 4, 3), dict(strides=2, padding="same")),
    ((2, 6, 3), (4, 2, 3), dict(strides=3, output_padding=1)),
    ((2, 3, 5, 4), (3, 2, 4, 3), dict(strides=2, padding="same", data_format="channels_first")),
    ((1, 3, 4, 5, 2), (2, 3, 2, 3, 2), dict(strides=(2, 1, 3), output_padding=(1, 0, 2))),
    ((1, 2, 3, 4, 5), (3, 2, 2, 2, 2), dict(dilation_rate=2, padding="same", data_format="channels_first")),
])
def test_ops_conv_transpose_matches_keras(x_shape, k_shape, kwargs):
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal(x_shape).astype("float32"), rng.standard_normal(k_shape).astype("float32")
    got = kc.ops.conv_transpose(x, k, **kwargs)
    np.testing.assert_allclose(np.asarray(got), np.asarray(keras.ops.conv_transpose(x, k, **kwargs)),
                               rtol=1e-5, atol=1e-5)


def test_conv3d_groups_and_conv3d_transpose(tmp_path):
    """Natively: a grouped Conv3D (channels reordered group-major) and Conv3DTranspose (one
    conv2d_transpose over stacked depth blocks, depth taps as channels), forward and one SGD step."""
    def build(L, Input, Model):
        inp = Input(shape=(3, 4, 3, 4))
        x = L.Conv3D(6, (2, 3, 2), groups=2, padding="same", activation="relu")(inp)
        x = L.Conv3DTranspose(3, (3, 2, 3), strides=(2, 1, 2), padding="same", output_padding=(1, 0, 0))(x)
        x = L.Conv3DTranspose(2, 2, dilation_rate=(1, 2, 1), use_bias=False, data_format="channels_first")(x)
        return Model(inp, _head(L, x))
    check_parity(build, (2, 3, 4, 3, 4), tmp_path)


@pytest.mark.parametrize("op,x_shape,args,kwargs", [
    ("conv", (2, 3, 7, 6), ((3, 3, 3, 4),), dict(strides=2, padding="same", data_format="channels_first")),
    ("conv", (2, 4, 9), ((3, 2, 6),), dict(dilation_rate=2, data_format="channels_first")),   # groups 2
    ("conv", (1, 4, 4, 5, 4), ((2, 3, 2, 2, 4),), dict(strides=(1, 2, 2), padding="same")),   # 3-D, groups 2
    ("max_pool", (2, 3, 7, 6), (2, 2), dict(data_format="channels_first")),
    ("average_pool", (1, 2, 5, 6, 4), (2, 2), dict(padding="same", data_format="channels_first")),
])
def test_ops_conv_and_pool_layouts_match_keras(op, x_shape, args, kwargs):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype("float32")
    args = tuple(rng.standard_normal(a).astype("float32") if isinstance(a, tuple) else a for a in args)
    got = getattr(kc.ops, op)(x, *args, **kwargs)
    np.testing.assert_allclose(np.asarray(got), np.asarray(getattr(keras.ops, op)(x, *args, **kwargs)),
                               rtol=1e-5, atol=1e-5)
