"""Augmentation and regularization layers: parity with Keras 3 (jax backend) where the result is
deterministic (inference, Resizing/CenterCrop, normalization, activity losses, degenerate factor
ranges in training), the ranges and distributions of the random ones, native == reference == ONNX
on the same rng counter, Keras's argument validation, and config round trips."""
import os

import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.jit import compile_graph
from kcompile.compiler.onnx_export import export_onnx
from kcompile.runtime.reference import run

from model_helpers import predict_ref

os.environ.setdefault("KERAS_BACKEND", "jax")
L = kc.layers
RNG = np.random.default_rng(7)
IMAGES = RNG.uniform(0, 255, (3, 10, 13, 3)).astype(np.float32)


def _keras():
    return pytest.importorskip("keras")


def _random_stack(L):
    return [L.RandomFlip(), L.RandomContrast(0.3), L.RandomBrightness(0.2), L.RandomRotation(0.2),
            L.RandomZoom(0.2), L.RandomTranslation(0.1, 0.2), L.GaussianNoise(0.1), L.GaussianDropout(0.2)]


def _inference_model(L, Input, Model):
    inp = Input(shape=(10, 13, 3))
    outs = [L.Resizing(7, 5)(inp), L.Resizing(17, 4, interpolation="nearest")(inp),
            L.Resizing(6, 6, crop_to_aspect_ratio=True)(inp),
            L.Resizing(6, 4, pad_to_aspect_ratio=True, fill_value=0.5)(inp),
            L.CenterCrop(6, 9)(inp), L.CenterCrop(12, 8)(inp), L.SpatialDropout2D(0.5)(inp)]
    x = inp
    for layer in _random_stack(L):
        x = layer(x)
    outs.append(x)
    g = L.GroupNormalization(3, epsilon=1e-2)(L.Conv2D(6, 3)(inp))
    outs += [g, L.UnitNormalization(axis=(1, 2))(g), L.GroupNormalization(-1, center=False)(g)]
    return Model(inp, outs)


def test_inference_matches_keras():
    keras = _keras()
    ours, theirs = _inference_model(L, kc.Input, kc.Model), _inference_model(keras.layers, keras.Input, keras.Model)
    weights = [RNG.standard_normal(w.shape).astype(np.float32) * 0.3 for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    want = theirs.predict(IMAGES, verbose=0)
    for g, w in zip(predict_ref(ours, IMAGES), want):   # native code: tests/compiler/test_image_ops.py
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=3e-4)   # pixels up to 255
    assert want[7].shape == IMAGES.shape
    np.testing.assert_array_equal(predict_ref(ours, IMAGES)[7], IMAGES)      # random layers: identity


@pytest.mark.parametrize("make", [
    lambda L: L.RandomRotation((0.1, 0.1), fill_mode="constant", fill_value=3.0),
    lambda L: L.RandomRotation((-0.3, -0.3), fill_mode="nearest", interpolation="nearest"),
    lambda L: L.RandomZoom((0.3, 0.3), (-0.2, -0.2)),
    lambda L: L.RandomZoom((-0.25, -0.25), fill_mode="wrap"),
    lambda L: L.RandomTranslation((0.1, 0.1), (-0.2, -0.2), fill_mode="reflect"),
    lambda L: L.RandomBrightness((0.1, 0.1), value_range=(0, 200)),
], ids=["rotation", "rotation-nearest", "zoom", "zoom-wrap", "translation", "brightness"])
def test_training_with_a_degenerate_range_matches_keras(make):
    """A factor range of one value makes the draw deterministic: the transform itself is compared."""
    keras = _keras()
    got = make(L)(IMAGES, training=True).numpy()
    want = np.asarray(make(keras.layers)(IMAGES, training=True))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=5e-4)


def test_activity_regularization_losses_match_keras():
    keras = _keras()
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    ours, theirs = L.ActivityRegularization(0.01, 0.02), keras.layers.ActivityRegularization(0.01, 0.02)
    np.testing.assert_array_equal(ours(x).numpy(), x)
    theirs(x)
    np.testing.assert_allclose(float(ours.losses[0].numpy()), float(theirs.losses[0]), rtol=1e-6)
    model = kc.Sequential([kc.Input(shape=(5,)), L.Dense(3), L.ActivityRegularization(l2=0.5)])
    model.compile(optimizer="sgd", loss="mse")
    y = np.zeros((4, 3), np.float32)
    with_reg = model.evaluate(x, y, verbose=0)
    pred = model.predict(x, verbose=0)
    np.testing.assert_allclose(with_reg, np.mean(pred ** 2) + 0.5 * np.sum(pred ** 2) / 4, rtol=1e-5)


def _train_graph(*layers, shape=(10, 13, 3)):
    inp = kc.Input(shape=shape)
    return kc.Model(inp, [layer(inp) for layer in layers]).forward_graph(training=True)


def test_same_counter_gives_the_same_images_natively_in_the_reference_and_in_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    exact = [L.RandomFlip(seed=1), L.RandomFlip("vertical"), L.RandomCrop(7, 9), L.SpatialDropout2D(0.5),
             L.RandomZoom((-0.3, 0.2), (0.1, 0.4), fill_mode="nearest", interpolation="nearest"),
             L.RandomTranslation(0.2, 0.2, fill_mode="constant", interpolation="nearest")]
    close = [L.RandomContrast(0.3), L.RandomBrightness(0.2), L.RandomRotation(0.2), L.RandomZoom(0.2),
             L.GaussianNoise(0.3), L.GaussianDropout(0.3)]
    graph = _train_graph(*exact, *close)
    native = compile_graph(graph)
    sess = ort.InferenceSession(str(export_onnx(graph, tmp_path / "aug.onnx")), providers=["CPUExecutionProvider"])
    for counter in (0, 17, 2**40 + 5):
        feeds = {graph.inputs[0].name: IMAGES, "__rng_counter": np.array(counter, np.int64)}
        ref = run(graph, feeds)
        for k, (n, o, r) in enumerate(zip(native(list(feeds.values())), sess.run(None, feeds), ref)):
            if k < len(exact):   # the draws and everything after them are exact: bit for bit
                np.testing.assert_array_equal(n, r)
                np.testing.assert_array_equal(o, r)
            else:                # the same draws; sin/cos/log polynomials and FMA differ by ulps
                np.testing.assert_allclose(n, r, rtol=1e-5, atol=1e-3)
                np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-3)
    other = run(graph, {graph.inputs[0].name: IMAGES, "__rng_counter": np.array(1, np.int64)})
    assert not all(np.array_equal(a, b) for a, b in zip(other, ref))   # a new counter, new draws


def _draws(layer, x, counters=range(40)):
    graph = _train_graph(layer, shape=x.shape[1:])
    return np.stack([run(graph, [x, np.array(c, np.int64)])[0] for c in counters])


def test_flip_probability_and_axes():
    x = RNG.standard_normal((50, 4, 5, 2)).astype(np.float32)
    out = _draws(L.RandomFlip("horizontal_and_vertical"), x, range(8))
    flipped = np.all(out == x[None, :, ::-1, ::-1], axis=(2, 3, 4))
    kept = np.all(out == x[None], axis=(2, 3, 4))
    assert np.all(flipped ^ kept) and 0.4 < flipped.mean() < 0.6


def test_brightness_and_contrast_ranges():
    x = np.tile(np.array([0.25, 0.75], np.float32).reshape(1, 1, 2, 1), (200, 1, 1, 1))
    delta = _draws(L.RandomBrightness((-0.2, 0.1), value_range=(-5, 5)), x, [3])[0] - x
    delta = delta[:, 0, 0, 0] / 10
    assert np.all(delta >= -0.2) and np.all(delta < 0.1) and abs(delta.mean() + 0.05) < 0.02
    out = _draws(L.RandomContrast((0.4, 0.3), value_range=(-9, 9)), x, [3])[0]   # sorted: c in [0.7, 1.4)
    c = (out[:, 0, 1, 0] - out[:, 0, 0, 0]) / 0.5
    assert np.all(c >= 0.7 - 1e-6) and np.all(c < 1.4 + 1e-6) and c.std() > 0.15
    assert len(np.unique(np.round(c, 6))) > 150   # a draw per image


def test_noise_distributions_and_spatial_masks():
    x = np.ones((40, 25, 25, 4), np.float32)
    noise = _draws(L.GaussianNoise(0.5), x, [1])[0] - 1
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.5) < 0.01
    mult = _draws(L.GaussianDropout(0.2), x, [1])[0]
    assert abs(mult.mean() - 1) < 0.01 and abs(mult.std() - 0.5) < 0.01
    kept = _draws(L.SpatialDropout2D(0.25), x, [2])[0]
    assert np.all(kept == kept[:, :1, :1, :])                              # one mask value per map
    assert set(np.unique(kept)) <= {0.0, np.float32(1 / 0.75)} and abs((kept[:, 0, 0] > 0).mean() - 0.75) < 0.1
    seq = _draws(L.SpatialDropout1D(0.5), np.ones((30, 6, 8), np.float32), [4])[0]
    assert np.all(seq == seq[:, :1, :])


def test_random_crop_windows_are_uniform_and_inside():
    x = np.arange(8 * 9, dtype=np.float32).reshape(1, 8, 9, 1)
    out = _draws(L.RandomCrop(3, 4), x, range(200))[:, 0, :, :, 0]
    tops, lefts = (out[:, 0, 0] // 9).astype(int), (out[:, 0, 0] % 9).astype(int)
    for o, t, l in zip(out, tops, lefts):
        np.testing.assert_array_equal(o, x[0, t:t + 3, l:l + 4, 0])
    assert set(tops) == set(range(6)) and set(lefts) == set(range(6))


def test_random_crop_at_inference_is_a_centred_aspect_crop_resized():
    x = RNG.uniform(0, 1, (2, 10, 12, 3)).astype(np.float32)
    got = L.RandomCrop(6, 8)(x).numpy()
    want = L.Resizing(6, 8, crop_to_aspect_ratio=True)(x).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make,match", [
    (lambda: L.RandomRotation(1.5), "factor"), (lambda: L.RandomRotation((0.1, 0.2, 0.3)), "factor"),
    (lambda: L.RandomRotation("big"), "factor"),
    (lambda: L.RandomZoom(-1.0), "height_factor"), (lambda: L.RandomZoom(0.1, 2.0), "width_factor"),
    (lambda: L.RandomTranslation(0.1, (-1.5, 0.2)), "width_factor"),
    (lambda: L.RandomContrast(-0.1), "factor"), (lambda: L.RandomContrast(1.5), "factor"),
    (lambda: L.RandomBrightness(1.2), "factor"), (lambda: L.RandomBrightness(0.1, value_range=(0,)), "value_range"),
    (lambda: L.RandomFlip("diagonal"), "mode"),
    (lambda: L.Resizing(0, 4), "height"), (lambda: L.Resizing(4, 4, interpolation="bicubic"), "interpolation"),
    (lambda: L.Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "only one"),
    (lambda: L.CenterCrop(3, -1), "width"), (lambda: L.RandomCrop(2.5, 3), "height"),
    (lambda: L.GaussianNoise(1.5), "stddev"), (lambda: L.GaussianDropout(-0.1), "rate"),
    (lambda: L.SpatialDropout2D(1.2), "rate"), (lambda: L.GroupNormalization(0), "groups"),
])
def test_bad_arguments_are_refused_naming_the_layer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make,match", [
    (lambda: L.RandomRotation(0.1, fill_mode="edge"), "fill_mode"),
    (lambda: L.RandomZoom(0.1, interpolation="bicubic"), "interpolation"),
])
def test_unknown_modes_are_refused_as_keras_does(make, match):
    with pytest.raises(NotImplementedError, match=match):
        make()


def test_bad_inputs_are_refused_naming_the_layer():
    with pytest.raises(ValueError, match="random_rotation.*RandomRotation.*rank 3.*or 4"):
        L.RandomRotation(0.1, name="random_rotation_bad")(kc.Input(shape=(5,)))
    with pytest.raises(ValueError, match="channels_first"):
        L.RandomFlip(data_format="channels_first")
    with pytest.raises(ValueError, match="SpatialDropout2D.*rank 4"):
        L.SpatialDropout2D(0.1)(kc.Input(shape=(5, 3)))
    with pytest.raises(ValueError, match="GroupNormalization.*5 channels.*4 equal groups"):
        L.GroupNormalization(4)(kc.Input(shape=(3, 5)))
    with pytest.raises(ValueError, match="UnitNormalization.*out of bounds"):
        L.UnitNormalization(axis=3)(kc.Input(shape=(3, 5)))


def test_configs_round_trip():
    layers = _random_stack(L) + [L.Resizing(4, 5, crop_to_aspect_ratio=True), L.CenterCrop(3, 4), L.RandomCrop(2, 3),
                                 L.SpatialDropout1D(0.2), L.SpatialDropout3D(0.3), L.ActivityRegularization(0.1),
                                 L.UnitNormalization([1, 2]), L.GroupNormalization(2, axis=1)]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
        assert type(layer).__name__ in L.BUILTIN_LAYERS


def test_unbatched_image():
    x = RNG.uniform(0, 1, (8, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(L.Resizing(4, 3)(x).numpy(), L.Resizing(4, 3)(x[None]).numpy()[0])


@pytest.mark.parametrize("kwargs", [dict(size=(14, 18)), dict(size=(3, 4)), dict(size=(7, 5), interpolation="nearest"),
                                    dict(size=(6, 6), crop_to_aspect_ratio=True),
                                    dict(size=(4, 9), pad_to_aspect_ratio=True, fill_value=2.0)])
def test_ops_image_resize_matches_keras(kwargs):
    keras = _keras()
    x = RNG.standard_normal((2, 7, 9, 3)).astype(np.float32)
    np.testing.assert_allclose(kc.ops.image.resize(x, **kwargs).numpy(), np.asarray(keras.ops.image.resize(x, **kwargs)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kc.ops.image.resize(x[0], **kwargs).numpy(),
                               np.asarray(keras.ops.image.resize(x[0], **kwargs)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["constant", "nearest", "wrap", "mirror", "reflect"])
@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_ops_image_affine_transform_matches_keras(mode, interp):
    """Given transforms (no projective part: Keras's JAX backend ignores it) in every mode."""
    keras = _keras()
    x = RNG.standard_normal((3, 7, 9, 2)).astype(np.float32)
    angle, scale = RNG.uniform(-3, 3, 3), RNG.uniform(0.7, 1.3, 3)
    t = np.stack([scale * np.cos(angle), -scale * np.sin(angle), RNG.uniform(-4, 4, 3), scale * np.sin(angle),
                  scale * np.cos(angle), RNG.uniform(-4, 4, 3), np.zeros(3), np.zeros(3)], axis=1).astype(np.float32)
    kw = dict(interpolation=interp, fill_mode=mode, fill_value=0.5)
    np.testing.assert_allclose(kc.ops.image.affine_transform(x, t, **kw).numpy(),
                               np.asarray(keras.ops.image.affine_transform(x, t, **kw)), rtol=1e-5, atol=1e-5)


def test_model_with_every_layer_saves_and_loads(tmp_path):
    model = kc.Sequential([kc.Input(shape=(10, 12, 3)), L.Resizing(8, 8), *_random_stack(L), L.RandomCrop(6, 6),
                           L.CenterCrop(5, 5), L.Conv2D(4, 3), L.SpatialDropout2D(0.2), L.GroupNormalization(2),
                           L.UnitNormalization(), L.ActivityRegularization(0.01), L.Flatten(), L.Dense(2)])
    model.save(tmp_path / "aug.keras")
    loaded = kc.models.load_model(tmp_path / "aug.keras")
    x = RNG.uniform(0, 1, (2, 10, 12, 3)).astype(np.float32)
    np.testing.assert_array_equal(predict_ref(loaded, x), predict_ref(model, x))
    assert [type(a).__name__ for a in loaded.layers] == [type(a).__name__ for a in model.layers]
