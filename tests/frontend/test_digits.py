"""End to end: a small MLP on scikit-learn's digits reaches >= 95% test accuracy (reference backend)."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

pytest.importorskip("sklearn")


def test_digits_mlp_reaches_95_percent():
    np.random.seed(0)  # fit's shuffling uses NumPy's global RNG, as Keras's NumPy data path
    (x_train, y_train), (x_test, y_test) = kc.datasets.digits.load_data()
    x_train, x_test = x_train / 16.0, x_test / 16.0
    model = kc.Sequential([
        layers.Dense(64, activation="relu", input_shape=(64,), kernel_initializer=kc.initializers.GlorotUniform(1)),
        layers.Dense(10, activation="softmax", kernel_initializer=kc.initializers.GlorotUniform(2)),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="reference")
    hist = model.fit(x_train, y_train, epochs=30, batch_size=32, validation_split=0.1, verbose=0)
    assert hist.history["accuracy"][-1] > hist.history["accuracy"][0]
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    assert test_acc >= 0.95, test_acc
    pred = model.predict(x_test, verbose=0)
    assert np.isclose(np.mean(pred.argmax(-1) == y_test), test_acc)
