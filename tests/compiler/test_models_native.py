"""Whole models through the Keras-style API: native forward and training steps vs the reference.

Each model is built twice with the same weights, compiled once per backend, trained for a few
steps on the same batches; losses, weights and predictions must agree within float32 tolerance.
"""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

RTOL, ATOL = 2e-4, 2e-5  # several chained steps of float32 with differently ordered sums


def mlp():
    return kc.Sequential([layers.Input((20,)), layers.Dense(32, activation="relu"),
                          layers.Dense(16, activation="tanh"), layers.Dense(5, activation="softmax")])


def convnet():
    return kc.Sequential([layers.Input((12, 12, 1)), layers.Conv2D(4, 3, activation="relu"),
                          layers.MaxPooling2D(2), layers.Conv2D(6, 3, activation="relu", padding="same"),
                          layers.Flatten(), layers.Dropout(0.5, seed=1), layers.Dense(5, activation="softmax")])


def branchy():
    x = layers.Input((10,))
    a = layers.Dense(12, activation="relu")(x)
    a = layers.BatchNormalization()(a)
    b = layers.Dense(12, activation="sigmoid")(x)
    h = layers.Dropout(0.3, seed=2)(layers.Concatenate()([a, b]))
    out = layers.Dense(5, activation="softmax")(layers.Add()([layers.Dense(8)(h), layers.Dense(8)(h)]))
    return kc.Model(x, out)


CASES = {"mlp": (mlp, (20,)), "convnet": (convnet, (12, 12, 1)), "branchy": (branchy, (10,))}


@pytest.mark.parametrize("name", sorted(CASES))
def test_native_training_matches_reference(name):
    build, in_shape = CASES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3 * 7,) + in_shape).astype(np.float32)
    y = rng.integers(0, 5, len(x)).astype(np.int64)
    models = {}
    for backend in ("reference", "native"):
        model = build()
        if backend == "native":
            model.set_weights(models["reference"].get_weights())
        model.compile(kc.optimizers.Adam(0.01), "sparse_categorical_crossentropy", backend=backend)
        models[backend] = model
    for step in range(3):
        xb, yb = x[7 * step:7 * step + 7], y[7 * step:7 * step + 7]
        losses = [models[k].train_on_batch(xb, yb) for k in ("reference", "native")]
        np.testing.assert_allclose(losses[1], losses[0], rtol=RTOL, atol=ATOL, err_msg=f"{name} step {step}")
    for w_ref, w_nat in zip(models["reference"].get_weights(), models["native"].get_weights()):
        np.testing.assert_allclose(w_nat, w_ref, rtol=RTOL, atol=ATOL)
    if name != "mlp":
        return  # (forward-only compiles cost time; one model checks predict at two batch sizes)
    for batch in (1, 5):
        np.testing.assert_allclose(models["native"].predict(x[:batch], verbose=0),
                                   models["reference"].predict(x[:batch], verbose=0), rtol=RTOL, atol=ATOL)
