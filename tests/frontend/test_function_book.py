"""Deep Learning with Python, chapter 7, listings 7.4.3/7.4.4 (custom training and evaluation loops),
run eagerly and decorated with kc.function (the book's "make it fast with tf.function"), with tf.data
replaced by kc.data: the same weights, optimizer state, metrics and logs at 1e-5. Then the decorated
loop against Keras 3's fit on the same data and initial weights. A small MNIST slice, a few steps."""
import os

import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.frontend.layers.core import _EagerCounter

_CANDIDATES = [os.environ.get("KCOMPILE_MNIST_DIR") or "",
               os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "mnist"),
               "/work/shared/data/mnist"]
os.environ.setdefault("KERAS_BACKEND", "jax")   # before anything imports keras
MNIST_DIR = next((d for d in _CANDIDATES if os.path.isfile(os.path.join(d, "train-images-idx3-ubyte.gz"))),
                 _CANDIDATES[1])
N_TRAIN, N_VAL, BATCH, EPOCHS = 256, 128, 64, 2


@pytest.fixture(scope="module")
def mnist_slice():
    if not os.path.isfile(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    (images, labels), _ = kc.datasets.mnist.load_data(MNIST_DIR)
    images = images[:N_TRAIN + N_VAL].reshape((-1, 28 * 28)).astype("float32") / 255
    labels = labels[:N_TRAIN + N_VAL]
    return (images[:N_TRAIN], labels[:N_TRAIN]), (images[N_TRAIN:], labels[N_TRAIN:])


def get_mnist_model(dropout=True):
    inputs = kc.Input(shape=(28 * 28,))
    features = layers.Dense(512, activation="relu")(inputs)
    if dropout:
        features = layers.Dropout(0.5)(features)
    outputs = layers.Dense(10, activation="softmax")(features)
    return kc.Model(inputs, outputs)


def book_loop(model, data, decorate, backend=None):
    """Listings 7.4.3 (training loop) and 7.4.4 (evaluation loop), verbatim but for the imports."""
    (train_images, train_labels), (val_images, val_labels) = data
    loss_fn = kc.losses.SparseCategoricalCrossentropy()
    optimizer = kc.optimizers.RMSprop()
    metrics = [kc.metrics.SparseCategoricalAccuracy()]
    loss_tracking_metric = kc.metrics.Mean()

    def train_step(inputs, targets):
        with kc.GradientTape() as tape:
            predictions = model(inputs, training=True)
            loss = loss_fn(targets, predictions)
        gradients = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        logs = {}
        for metric in metrics:
            metric.update_state(targets, predictions)
            logs[metric.name] = metric.result()
        loss_tracking_metric.update_state(loss)
        logs["loss"] = loss_tracking_metric.result()
        return logs

    def reset_metrics():
        for metric in metrics:
            metric.reset_state()
        loss_tracking_metric.reset_states()

    def test_step(inputs, targets):
        predictions = model(inputs, training=False)
        loss = loss_fn(targets, predictions)
        logs = {}
        for metric in metrics:
            metric.update_state(targets, predictions)
            logs["val_" + metric.name] = metric.result()
        loss_tracking_metric.update_state(loss)
        logs["val_loss"] = loss_tracking_metric.result()
        return logs

    if decorate:
        train_step = kc.function(train_step, backend=backend)
        test_step = kc.function(test_step, backend=backend)
    training_dataset = kc.data.Dataset.from_tensor_slices((train_images, train_labels)).batch(BATCH)
    history = []
    for epoch in range(EPOCHS):
        reset_metrics()
        for inputs_batch, targets_batch in training_dataset:
            logs = train_step(inputs_batch, targets_batch)
        history.append({k: float(v) for k, v in logs.items()})
    val_dataset = kc.data.Dataset.from_tensor_slices((val_images, val_labels)).batch(BATCH)
    reset_metrics()
    for inputs_batch, targets_batch in val_dataset:
        logs = test_step(inputs_batch, targets_batch)
    history.append({k: float(v) for k, v in logs.items()})
    return history, optimizer, (train_step, test_step)


def _run(model, w0, data, decorate, backend=None):
    model.set_weights(w0)
    _EagerCounter.value = 1000   # the same dropout masks for both runs
    history, optimizer, steps = book_loop(model, data, decorate, backend)
    return history, model.get_weights(), optimizer, steps


def test_book_loops_eager_and_decorated_agree(mnist_slice):
    model = get_mnist_model()
    w0 = model.get_weights()
    eager, eager_w, eager_opt, _ = _run(model, w0, mnist_slice, decorate=False)
    assert eager[-1]["val_sparse_categorical_accuracy"] > 0.5   # it learned something
    for backend in ("native", "reference"):
        traced, traced_w, traced_opt, (train_step, test_step) = _run(model, w0, mnist_slice, True, backend)
        assert train_step.tracing_count == 1 and test_step.tracing_count == 1   # one trace per signature
        assert [list(e) for e in eager] == [list(t) for t in traced]             # same logs, same order
        for e, t in zip(eager, traced):
            for k in e:
                np.testing.assert_allclose(t[k], e[k], rtol=1e-5, atol=1e-6, err_msg=f"{backend}: {k}")
        for a, b in zip(eager_w, traced_w):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=backend)
        assert int(traced_opt.iterations) == int(eager_opt.iterations) == EPOCHS * N_TRAIN // BATCH
        for path, slots in eager_opt.slots.items():
            np.testing.assert_allclose(traced_opt.slots[path]["velocity"], slots["velocity"], rtol=1e-5, atol=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")   # inside Keras/NumPy 2
def test_decorated_loop_matches_keras_fit(mnist_slice):
    """Keras 3's fit (same data order, initial weights, RMSprop) gives the same epoch logs and weights."""
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("the Keras comparison runs with KERAS_BACKEND=jax")
    model = get_mnist_model(dropout=False)
    w0 = model.get_weights()
    ours, our_w, _, _ = _run(model, w0, mnist_slice, decorate=True)
    (x, y), _ = mnist_slice
    k_in = keras.Input(shape=(784,))
    k_out = keras.layers.Dense(10, activation="softmax")(keras.layers.Dense(512, activation="relu")(k_in))
    k_model = keras.Model(k_in, k_out)
    k_model.set_weights(w0)
    k_model.compile(keras.optimizers.RMSprop(), keras.losses.SparseCategoricalCrossentropy(),
                    metrics=[keras.metrics.SparseCategoricalAccuracy()])
    theirs = k_model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0).history
    for epoch in range(EPOCHS):
        np.testing.assert_allclose(ours[epoch]["loss"], theirs["loss"][epoch], rtol=1e-4)
        np.testing.assert_allclose(ours[epoch]["sparse_categorical_accuracy"],
                                   theirs["sparse_categorical_accuracy"][epoch], atol=1e-6)
    for a, b in zip(our_w, k_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5)
