"""Parity with Keras 3 (jax backend), skipped where Keras is absent: same initial weights, data and
batch order give the same per-epoch losses and weights for every optimizer; losses and metrics agree."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("Keras parity tests need KERAS_BACKEND=jax", allow_module_level=True)

import kcompile as kc  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside Keras/NumPy 2

RNG = np.random.default_rng(11)
X = RNG.standard_normal((64, 6)).astype("float32")
Y = RNG.integers(0, 3, 64)
W0 = [RNG.standard_normal((6, 8)).astype("float32") * 0.5, RNG.standard_normal(8).astype("float32") * 0.1,
      RNG.standard_normal((8, 3)).astype("float32") * 0.5, RNG.standard_normal(3).astype("float32") * 0.1]

OPTIMIZERS = [
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, amsgrad=True)),
    ("AdamW", dict(learning_rate=0.01)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.5, clipnorm=0.1)),
]


def _train(lib, opt_name, opt_kwargs, epochs=2):
    L = lib.layers
    model = lib.Sequential([L.Input(shape=(6,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    model.set_weights(W0)
    extra = {"backend": "reference"} if lib is kc else {}
    model.compile(getattr(lib.optimizers, opt_name)(**opt_kwargs), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], **extra)
    hist = model.fit(X, Y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return hist.history, model.get_weights()


@pytest.mark.parametrize("opt_name,opt_kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_fit_matches_keras(opt_name, opt_kwargs):
    ours, our_w = _train(kc, opt_name, opt_kwargs)
    theirs, their_w = _train(keras, opt_name, opt_kwargs)
    assert sorted(ours) == sorted(theirs)
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)
    np.testing.assert_allclose(ours["accuracy"], theirs["accuracy"], rtol=1e-6)
    for a, b in zip(our_w, their_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_exponential_decay_matches_keras():
    results = []
    for lib in (kc, keras):
        sched = lib.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
        hist, weights = _train(lib, "SGD", dict(learning_rate=sched))
        results.append(weights)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


LOSSES = [
    ("MeanSquaredError", {}, "dense"), ("MeanAbsoluteError", {}, "dense"),
    ("BinaryCrossentropy", {"label_smoothing": 0.1}, "binary"), ("BinaryCrossentropy", {"from_logits": True}, "binary"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.2}, "onehot"),
    ("CategoricalCrossentropy", {"from_logits": True}, "onehot"),
    ("SparseCategoricalCrossentropy", {}, "sparse"), ("SparseCategoricalCrossentropy", {"from_logits": True}, "sparse"),
]


@pytest.mark.parametrize("name,kwargs,kind", LOSSES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(LOSSES)])
def test_losses_match_keras(name, kwargs, kind):
    logits = RNG.standard_normal((10, 4)).astype("float32")
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = RNG.integers(0, 4, 10)
    y_true, y_pred = {
        "dense": (RNG.standard_normal((10, 4)).astype("float32"), logits),
        "binary": (RNG.integers(0, 2, (10, 4)).astype("float32"),
                   logits if kwargs.get("from_logits") else probs),
        "onehot": (np.eye(4, dtype="float32")[labels], logits if kwargs.get("from_logits") else probs),
        "sparse": (labels, logits if kwargs.get("from_logits") else probs),
    }[kind]
    sw = RNG.random(10).astype("float32")
    ours = getattr(kc.losses, name)(**kwargs)(y_true, y_pred, sample_weight=sw)
    theirs = getattr(keras.losses, name)(**kwargs)(y_true, y_pred, sample_weight=sw)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)


def test_metrics_match_keras():
    y = RNG.integers(0, 2, 50).astype("float32")
    p = RNG.random(50).astype("float32")
    sw = RNG.random(50).astype("float32")
    for name, kwargs in [("AUC", {}), ("AUC", {"curve": "PR"}), ("Precision", {}), ("Recall", {"thresholds": 0.3}),
                         ("BinaryAccuracy", {})]:
        ours, theirs = getattr(kc.metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
        for part in (slice(0, 20), slice(20, 50)):
            ours.update_state(y[part], p[part], sample_weight=sw[part])
            theirs.update_state(y[part], p[part], sample_weight=sw[part])
        np.testing.assert_allclose(float(ours.result()), float(theirs.result()), rtol=1e-5, err_msg=name)


def test_weighted_metrics_names_and_values_match_keras():
    sw = RNG.random(64).astype("float32")
    logs = []
    for lib in (kc, keras):
        L = lib.layers
        model = lib.Sequential([L.Input(shape=(6,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
        model.set_weights(W0)
        extra = {"backend": "reference"} if lib is kc else {}
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy", "accuracy"],
                      weighted_metrics=["accuracy"], **extra)
        logs.append(model.evaluate(X, Y, sample_weight=sw, batch_size=16, verbose=0, return_dict=True))
    assert sorted(logs[0]) == sorted(logs[1])
    for key in logs[1]:
        np.testing.assert_allclose(logs[0][key], logs[1][key], rtol=1e-5, err_msg=key)


def test_multi_output_history_matches_keras():
    yc, yr = Y, RNG.standard_normal((64, 1)).astype("float32")
    histories, weights = [], None
    for lib in (kc, keras):
        L = lib.layers
        inp = lib.Input(shape=(6,), name="features")
        h = L.Dense(4, activation="relu", name="hidden")(inp)
        model = lib.Model(inp, [L.Dense(3, activation="softmax", name="cls")(h), L.Dense(1, name="reg")(h)])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        extra = {"backend": "reference"} if lib is kc else {}
        model.compile("rmsprop", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                      loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"], "reg": ["mae"]}, **extra)
        histories.append(model.fit(X, {"cls": yc, "reg": yr}, epochs=2, batch_size=16, shuffle=False,
                                   verbose=0).history)
    assert sorted(histories[0]) == sorted(histories[1]) == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae"]
    for key in histories[1]:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5, err_msg=key)


def test_convnet_with_batchnorm_and_regularizer_matches_keras():
    """BN moving statistics, an l2 penalty and pooling inside the train step; no conv bias (BN cancels its
    gradient, so Adam would amplify rounding noise in it)."""
    x = RNG.standard_normal((32, 6, 6, 2)).astype("float32")
    y = RNG.integers(0, 3, 32)
    results, weights = [], None
    for lib in (kc, keras):
        L = lib.layers
        model = lib.Sequential([
            L.Input(shape=(6, 6, 2)),
            L.Conv2D(4, 3, padding="same", use_bias=False, kernel_regularizer=lib.regularizers.l2(0.01)),
            L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(), L.Flatten(),
            L.Dense(3, activation="softmax")])
        weights = weights or model.get_weights()
        model.set_weights(weights)
        extra = {"backend": "reference"} if lib is kc else {}
        model.compile(lib.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"], **extra)
        hist = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0).history
        results.append((hist, model.get_weights(), model.evaluate(x, y, verbose=0)))
    np.testing.assert_allclose(results[0][0]["loss"], results[1][0]["loss"], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(results[0][2], results[1][2], rtol=1e-5)
