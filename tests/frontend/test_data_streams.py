"""fit/evaluate/predict on Python generators, iterators and kc.utils.PyDataset, as Keras 3 (jax backend)
runs them: same batches, same weights; bad batches name the step; an exhausted generator warns and stops."""
import os
import warnings

import numpy as np
import pytest

import kcompile as kc

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside Keras/NumPy 2

RNG = np.random.default_rng(3)
X = RNG.standard_normal((40, 4)).astype("float32")
Y = (np.arange(40) % 3).astype("int64")
W0 = [RNG.standard_normal((4, 5)).astype("float32") * 0.5, np.zeros(5, "float32"),
      RNG.standard_normal((5, 3)).astype("float32") * 0.5, np.zeros(3, "float32")]


def _model(lib=kc):
    L = lib.layers
    model = lib.Sequential([L.Input(shape=(4,)), L.Dense(5, activation="relu"), L.Dense(3, activation="softmax")])
    model.set_weights(W0)
    model.compile(lib.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  **({"backend": "reference"} if lib is kc else {}))
    return model


def _batches(batch=8, weights=False):
    while True:
        for i in range(0, len(X), batch):
            part = (X[i:i + batch], Y[i:i + batch])
            yield part + ((np.full(len(part[0]), 0.5, "float32"),) if weights else ())


def _make_py_dataset(base):
    class Batches(base):
        def __init__(self, batch, **kwargs):
            super().__init__(**kwargs)
            self.batch, self.epochs_ended = batch, 0

        def __len__(self):
            return -(-len(X) // self.batch)

        def __getitem__(self, i):
            return X[i * self.batch:(i + 1) * self.batch], Y[i * self.batch:(i + 1) * self.batch]

        def on_epoch_end(self):
            self.epochs_ended += 1
    return Batches


def test_generator_with_steps_per_epoch_trains_like_the_same_arrays():
    by_gen = _model().fit(_batches(), steps_per_epoch=5, epochs=3, verbose=0).history
    by_arrays = _model().fit(X, Y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    for key in by_arrays:
        np.testing.assert_allclose(by_gen[key], by_arrays[key], rtol=1e-6, err_msg=key)


def test_py_dataset_visits_every_batch_and_calls_on_epoch_end():
    ds = _make_py_dataset(kc.utils.PyDataset)(batch=16)   # 16, 16, 8: the last batch is partial
    model = _model()
    hist = model.fit(ds, epochs=2, shuffle=False, verbose=0).history
    assert ds.epochs_ended == 2
    ref = _model().fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(hist["loss"], ref["loss"], rtol=1e-6)
    assert kc.utils.Sequence is kc.utils.PyDataset
    np.testing.assert_allclose(model.predict(ds, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(model.evaluate(ds, verbose=0), model.evaluate(X, Y, verbose=0), rtol=1e-6)


def test_validation_data_evaluate_and_predict_take_generators():
    model = _model()
    hist = model.fit(_batches(weights=True), steps_per_epoch=5, epochs=2, verbose=0,
                     validation_data=_batches(), validation_steps=5).history
    assert sorted(hist) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    np.testing.assert_allclose(model.evaluate(_batches(), steps=5, verbose=0), model.evaluate(X, Y, verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(model.predict(iter([X[:8], X[8:20]]), verbose=0), model.predict(X[:20], verbose=0),
                               rtol=1e-6)


def test_generator_of_dicts_feeds_a_multi_input_model():
    a, b = kc.Input(shape=(2,), name="a"), kc.Input(shape=(2,), name="b")
    out = kc.layers.Dense(3, activation="softmax")(kc.layers.Concatenate()([a, b]))
    model = kc.Model([a, b], out)
    model.compile("sgd", "sparse_categorical_crossentropy", backend="reference")

    def gen():
        for i in range(0, 40, 10):
            yield {"a": X[i:i + 10, :2], "b": X[i:i + 10, 2:]}, Y[i:i + 10]
    hist = model.fit(gen(), epochs=1, verbose=0).history
    assert len(hist["loss"]) == 1


def test_wrong_shapes_mid_epoch_name_the_step_and_the_shapes():
    def gen():
        yield X[:8], Y[:8]
        yield X[8:16], Y[8:16]
        yield X[16:24, :3], Y[16:24]
    with pytest.raises(ValueError, match=r"step 2: .*x with samples of shape \(3,\).*step 0.*\(4,\)"):
        _model().fit(gen(), epochs=1, verbose=0)

    def gen2():
        yield X[:8], Y[:8]
        yield (X[8:16],)
    with pytest.raises(ValueError, match="step 1"):
        _model().fit(gen2(), epochs=1, verbose=0)

    def gen3():
        yield X[:8], Y[:5]
    with pytest.raises(ValueError, match=r"step 0: .*different numbers of samples.*\[8\].*\[5\]"):
        _model().fit(gen3(), epochs=1, verbose=0)


def test_an_exhausted_generator_warns_and_stops_training():
    gen = (b for _, b in zip(range(7), _batches()))   # 7 batches in all
    with pytest.warns(UserWarning, match="ran out of data"):
        hist = _model().fit(gen, steps_per_epoch=5, epochs=4, verbose=0)
    assert hist.epoch == [0, 1]   # the second epoch got 2 of its 5 steps, then training stopped
    finite = (b for _, b in zip(range(5), _batches()))
    with pytest.warns(UserWarning, match="ran out of data"):
        hist = _model().fit(finite, epochs=3, verbose=0)   # no steps_per_epoch: epoch 1 drains it
    assert hist.epoch == [0]
    with pytest.raises(ValueError, match="y and sample_weight come from it"):
        _model().fit(_batches(), Y, steps_per_epoch=2, verbose=0)


def test_fit_on_generator_and_py_dataset_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras parity tests need KERAS_BACKEND=jax")
    runs = []
    for lib in (kc, keras):
        model = _model(lib)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h1 = model.fit(_batches(weights=True), steps_per_epoch=5, epochs=2, verbose=0).history
            h2 = model.fit(_make_py_dataset(lib.utils.PyDataset)(batch=16), epochs=2, shuffle=False, verbose=0).history
        runs.append((h1, h2, model.get_weights()))
    for k in (0, 1):
        for key in runs[1][k]:
            np.testing.assert_allclose(runs[0][k][key], runs[1][k][key], rtol=1e-5, err_msg=key)
    for a, b in zip(runs[0][2], runs[1][2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
