"""Normalization, Discretization and CategoryEncoding against Keras 3 (jax backend): adapt gives the same
state, calls give the same outputs, and the layers compile into a model's graph (native predict) and
round-trip through Keras's .keras format. (Keras's adapt() of these two needs TensorFlow only to test for a
tf.data.Dataset; the tests call its own update_state/finalize_state, the same code path, instead.)"""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")

import kcompile as kc  # noqa: E402

RNG = np.random.default_rng(0)
X = (RNG.standard_normal((50, 4, 3)) * 3 + 1).astype("float32")


def _close(ours, theirs, atol=1e-6):
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-6, atol=atol)


@pytest.mark.parametrize("kwargs", [{}, {"axis": None}, {"axis": (1, 2)}, {"invert": True}])
def test_normalization_adapt_matches_keras(kwargs):
    theirs, ours = keras.layers.Normalization(**kwargs), kc.layers.Normalization(**kwargs)
    theirs.adapt(X)
    ours.adapt(X)
    assert [tuple(w.shape) for w in theirs.weights] == [tuple(w.shape) for w in ours.weights]
    _close(ours(X).numpy(), theirs(X))


def test_normalization_given_mean_and_variance_and_batched_adapt():
    kw = {"mean": [1.0, 2.0, 3.0], "variance": [4.0, 5.0, 0.0]}
    _close(kc.layers.Normalization(**kw)(X).numpy(), keras.layers.Normalization(**kw)(X), atol=1e-5)
    whole, batched = kc.layers.Normalization(), kc.layers.Normalization()
    whole.adapt(X)
    batched.adapt([X[:13], X[13:31], X[31:]])    # Keras's running merge of batch means and variances
    _close(batched.adapt_mean.numpy(), whole.adapt_mean.numpy(), atol=1e-5)
    _close(batched.adapt_variance.numpy(), whole.adapt_variance.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        kc.layers.Normalization(mean=1.0)


def _keras_adapt(layer, *parts):
    layer.reset_state()
    for p in parts:
        layer.update_state(p)
    layer.finalize_state()


@pytest.mark.parametrize("kwargs", [{"num_bins": 5}, {"num_bins": 4, "epsilon": 0.001},
                                    {"num_bins": 3, "output_mode": "one_hot"}])
def test_discretization_adapt_matches_keras(kwargs):
    data = RNG.standard_normal((300, 2)).astype("float32")
    theirs, ours = keras.layers.Discretization(**kwargs), kc.layers.Discretization(**kwargs)
    _keras_adapt(theirs, data[:100], data[100:])
    ours.adapt([data[:100], data[100:]])
    assert ours.bin_boundaries == theirs.bin_boundaries
    got, want = ours(data).numpy(), np.asarray(theirs(data))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_discretization_given_boundaries_and_errors():
    x = np.array([[-1.5, 0.0, 0.2, 1.0, 7.0]], np.float32)
    for mode in ("int", "one_hot", "multi_hot", "count"):
        kw = {"bin_boundaries": [0.0, 1.0, 2.0], "output_mode": mode}
        xx = x.reshape(5, 1) if mode == "one_hot" else x
        np.testing.assert_array_equal(kc.layers.Discretization(**kw)(xx).numpy(),
                                      np.asarray(keras.layers.Discretization(**kw)(xx)))
    with pytest.raises(ValueError, match="exactly one of `num_bins` and `bin_boundaries`"):
        kc.layers.Discretization()
    with pytest.raises(ValueError, match="use `num_bins` instead"):
        kc.layers.Discretization(bin_boundaries=[0.0]).adapt(x)


@pytest.mark.parametrize("mode", ["one_hot", "multi_hot", "count"])
def test_category_encoding_matches_keras(mode):
    tokens = RNG.integers(0, 6, (7, 3))
    tokens = tokens[:, :1] if mode == "one_hot" else tokens
    _close(kc.layers.CategoryEncoding(6, output_mode=mode)(tokens).numpy(),
           keras.layers.CategoryEncoding(6, output_mode=mode)(tokens))
    if mode == "count":
        w = RNG.random(tokens.shape).astype("float32")
        _close(kc.layers.CategoryEncoding(6, output_mode=mode)(tokens, count_weights=w).numpy(),
               keras.layers.CategoryEncoding(6, output_mode=mode)(tokens, count_weights=w))
    else:
        with pytest.raises(ValueError, match="count_weights"):
            kc.layers.CategoryEncoding(6, output_mode=mode)(tokens, count_weights=np.ones(tokens.shape))


def test_numeric_preprocessing_compiles_into_a_model_and_round_trips_the_keras_format(tmp_path):
    def build(L, Input, Model):
        num, cat = Input((3,)), Input((2,), dtype="int32")
        norm = L.Normalization()
        norm.adapt(X[:, 0, :])
        disc = L.Discretization(bin_boundaries=[-1.0, 0.0, 1.0], output_mode="one_hot")
        feats = L.Concatenate()([norm(num), L.CategoryEncoding(5, output_mode="count")(cat),
                                 L.Flatten()(disc(L.Reshape((3, 1))(num)))])
        return Model([num, cat], L.Dense(2)(feats))
    ours, theirs = build(kc.layers, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)
    ours.set_weights(theirs.get_weights())
    xs = [X[:6, 1, :], RNG.integers(0, 5, (6, 2)).astype("int32")]
    want = np.asarray(theirs.predict(xs, verbose=0))
    _close(ours.predict(xs, verbose=0), want, atol=1e-5)      # the native compiled graph
    theirs.save(tmp_path / "k.keras")
    _close(kc.models.load_model(tmp_path / "k.keras").predict(xs, verbose=0), want, atol=1e-5)
    ours.save(tmp_path / "o.keras", format="keras")
    _close(np.asarray(keras.models.load_model(tmp_path / "o.keras").predict(xs, verbose=0)), want, atol=1e-5)
