"""compile/fit/evaluate/predict: exact first steps vs NumPy, History keys, return forms, bad input."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.frontend import config

RNG = np.random.default_rng(0)
X = RNG.standard_normal((40, 3)).astype("float32")
Y_SPARSE = (X[:, 0] > 0).astype("int64") + (X[:, 1] > 0)
Y_REG = (X @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype("float32")


def linear_model(units=1, activation=None, **kwargs):
    model = kc.Sequential([layers.Dense(units, activation=activation, input_shape=(3,), **kwargs)])
    model.set_weights([np.full((3, units), 0.1, np.float32), np.zeros((units,), np.float32)])
    return model


def test_one_sgd_step_matches_numpy():
    model = linear_model()
    model.compile(optimizer=kc.optimizers.SGD(learning_rate=0.1), loss="mse", backend="reference")
    xb, yb = X[:8], Y_REG[:8]
    loss = model.train_on_batch(xb, yb)
    w, b = np.full((3, 1), 0.1, np.float32), np.zeros(1, np.float32)
    err = xb @ w + b - yb
    assert np.isclose(loss, np.mean(err ** 2), rtol=1e-6)
    w_new, b_new = model.get_weights()
    np.testing.assert_allclose(w_new, w - 0.1 * (2 * xb.T @ err / 8), rtol=1e-5)
    np.testing.assert_allclose(b_new, b - 0.1 * (2 * err.sum(0) / 8), rtol=1e-5)
    assert model.optimizer.iterations == 1


def test_fit_history_keys_named_as_user_named_them():
    model = linear_model(3, "softmax")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["acc", "sparse_top_k_categorical_accuracy"],
                  backend="reference")
    hist = model.fit(X, Y_SPARSE, epochs=2, batch_size=16, validation_split=0.25, verbose=0)
    assert sorted(hist.history) == ["acc", "loss", "sparse_top_k_categorical_accuracy", "val_acc", "val_loss",
                                    "val_sparse_top_k_categorical_accuracy"]
    assert len(hist.history["loss"]) == 2 and hist.epoch == [0, 1]
    assert model.metrics_names == ["loss", "acc", "sparse_top_k_categorical_accuracy"]
    assert model.metrics[1].name == "compile_metrics"   # Keras 3: the compiled metrics as one container
    assert isinstance(model.metrics[1].metrics[0], kc.metrics.SparseCategoricalAccuracy)


def test_loss_decreases_and_sample_weight_and_regularizer_enter_the_loss():
    model = linear_model(kernel_regularizer=kc.regularizers.l2(0.01))
    model.compile(kc.optimizers.SGD(0.05), "mse", backend="reference")
    before = model.evaluate(X, Y_REG, verbose=0)
    w = model.get_weights()[0]
    pred = X @ w
    assert np.isclose(before, np.mean((pred - Y_REG) ** 2) + 0.01 * np.sum(w ** 2), rtol=1e-5)
    sw = np.linspace(0, 2, len(X)).astype("float32")
    weighted = model.evaluate(X, Y_REG, sample_weight=sw, verbose=0)
    assert np.isclose(weighted, np.mean((pred - Y_REG)[:, 0] ** 2 * sw) + 0.01 * np.sum(w ** 2), rtol=1e-5)
    hist = model.fit(X, Y_REG, epochs=5, batch_size=8, shuffle=False, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0] < before + 1e-6


def test_evaluate_return_forms():
    model = linear_model(3, "softmax")
    model.compile("sgd", "sparse_categorical_crossentropy", backend="reference")
    assert isinstance(model.evaluate(X, Y_SPARSE, verbose=0), float)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], backend="reference")
    loss, acc = model.evaluate(X, Y_SPARSE, verbose=0)
    logs = model.evaluate(X, Y_SPARSE, verbose=0, return_dict=True)
    assert logs == {"accuracy": acc, "loss": loss}
    pred = model.predict(X, verbose=0)
    assert np.isclose(acc, np.mean(pred.argmax(-1) == Y_SPARSE))
    test_loss, test_acc = model.test_on_batch(X, Y_SPARSE)
    assert np.isclose(test_loss, loss, rtol=1e-6) and np.isclose(test_acc, acc)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 64])
def test_predict_any_batch_size(batch_size):
    model = linear_model(2, "relu")
    expected = np.maximum(X @ np.full((3, 2), 0.1, np.float32), 0)
    np.testing.assert_allclose(model.predict(X, batch_size=batch_size, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(X[:5]), expected[:5], rtol=1e-6)


def test_functional_multi_output_losses_weights_and_names():
    inp = kc.Input(shape=(3,), name="features")
    h = layers.Dense(4, activation="relu", name="hidden")(inp)
    cls = layers.Dense(3, activation="softmax", name="cls")(h)
    reg = layers.Dense(1, name="reg")(h)
    model = kc.Model(inp, [cls, reg])
    model.compile("rmsprop", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]}, backend="reference")
    logs = model.evaluate(X, {"cls": Y_SPARSE, "reg": Y_REG}, verbose=0, return_dict=True)
    assert sorted(logs) == ["cls_accuracy", "cls_loss", "loss", "reg_loss"]
    assert np.isclose(logs["loss"], logs["cls_loss"] + 0.5 * logs["reg_loss"], rtol=1e-5)
    hist = model.fit(X, [Y_SPARSE, Y_REG], epochs=2, verbose=0)
    assert "cls_accuracy" in hist.history


def test_dropout_and_batchnorm_in_training():
    model = kc.Sequential([layers.Dense(8, input_shape=(3,)), layers.BatchNormalization(), layers.Dropout(0.5),
                           layers.Dense(1)])
    model.compile("adam", "mse", backend="reference")
    bn = model.layers[1]
    mean_before = bn.moving_mean.numpy().copy()
    model.fit(X, Y_REG, epochs=1, batch_size=40, verbose=0)
    assert not np.allclose(bn.moving_mean.numpy(), mean_before)
    first = model.train_on_batch(X, Y_REG)
    second = model.train_on_batch(X, Y_REG)
    assert first != second  # a new dropout mask (and weights) each step
    np.testing.assert_allclose(model.predict(X[:4], verbose=0), model.predict(X[:4], verbose=0))


def test_native_backend_matches_reference_when_available():
    if not config.native_available():
        pytest.skip("native JIT not available")
    results = []
    for backend in ("reference", "native"):
        model = linear_model(3, "softmax")
        model.compile(kc.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      backend=backend)
        hist = model.fit(X, Y_SPARSE, epochs=2, batch_size=8, shuffle=False, verbose=0)
        results.append((hist.history["loss"], model.get_weights()[0]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


def test_learning_rate_change_needs_no_recompile():
    model = linear_model()
    model.compile(kc.optimizers.SGD(0.1), "mse", backend="reference")
    model.train_on_batch(X, Y_REG)
    runners = dict(model._compiled.step_cache)
    model.optimizer.learning_rate = 0.0
    w = model.get_weights()[0].copy()
    model.train_on_batch(X, Y_REG)
    np.testing.assert_array_equal(model.get_weights()[0], w)
    assert model._compiled.step_cache == runners


# -- bad input: clear errors before any training -----------------------------------------------
def _compiled(loss, units=3, activation="softmax"):
    model = linear_model(units, activation)
    model.compile("sgd", loss, backend="reference")
    return model


def _assert_untouched(model, fn, match):
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=match):
        fn()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_errors_before_training():
    m = _compiled("sparse_categorical_crossentropy")
    _assert_untouched(m, lambda: m.fit(X, Y_SPARSE[:30], verbose=0), "Data cardinality")
    _assert_untouched(m, lambda: m.fit(X[:, :2], Y_SPARSE, verbose=0), r"expects samples of shape \(3,\)")
    _assert_untouched(m, lambda: m.fit(X, Y_SPARSE + 1, verbose=0), r"class ids in \[0, 3\)")
    _assert_untouched(m, lambda: m.fit(X, np.eye(3)[Y_SPARSE], verbose=0), "categorical_crossentropy")
    c = _compiled("categorical_crossentropy")
    _assert_untouched(c, lambda: c.fit(X, Y_SPARSE, verbose=0), "sparse_categorical_crossentropy")
    _assert_untouched(c, lambda: c.fit(X, np.eye(4)[Y_SPARSE], verbose=0), r"one-hot rows of shape \(3,\)")
    r = _compiled("mse", 1, None)
    _assert_untouched(r, lambda: r.fit(X, np.zeros((40, 2)), verbose=0), "do not match")
    with pytest.raises(RuntimeError, match="compile"):
        linear_model().fit(X, Y_REG, verbose=0)


class MeanPredictedClass(kc.metrics.Metric):
    """A custom metric with state Variables, updated by fit on every batch."""

    def __init__(self, name="mean_class", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        classes = kc.ops.cast(kc.ops.argmax(y_pred, axis=-1), "float32")
        self.total.assign_add(kc.ops.sum(classes).numpy())
        self.count.assign_add(len(y_pred))

    def result(self):
        return self.total.numpy() / max(float(self.count.numpy()), 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


def test_custom_metric_initial_epoch_steps_and_class_weight():
    model = linear_model(3, "softmax")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=[MeanPredictedClass()], backend="reference")
    hist = model.fit(X, Y_SPARSE, epochs=3, initial_epoch=1, steps_per_epoch=2, batch_size=8, verbose=0,
                     class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    assert hist.epoch == [1, 2] and model.optimizer.iterations == 4
    logs = model.evaluate(X, Y_SPARSE, verbose=0, return_dict=True)
    assert np.isclose(logs["mean_class"], model.predict(X, verbose=0).argmax(-1).mean())


def test_dict_inputs_and_targets_by_name():
    inp = kc.Input(shape=(3,), name="features")
    model = kc.Model(inp, layers.Dense(1, name="out")(inp))
    model.compile("sgd", "mse", backend="reference")
    hist = model.fit({"features": X}, {"out": Y_REG}, epochs=1, verbose=0)
    assert len(hist.history["loss"]) == 1
    with pytest.raises(ValueError, match="missing keys"):
        model.fit({"feats": X}, Y_REG, verbose=0)


def test_backend_chosen_in_one_place_and_train_graph_exposed():
    from kcompile.ir import verify
    config.set_backend("reference")
    try:
        model = linear_model(3, "softmax")
        model.compile("adam", "sparse_categorical_crossentropy")
        model.train_on_batch(X[:4], Y_SPARSE[:4])
        runner = next(iter(model._compiled.step_cache.values()))
        assert runner.execute.backend == "reference"
    finally:
        config.set_backend(None)
    graph = model.train_step_graph(Y_SPARSE)
    verify(graph)
    assert graph.input_names() == [model.input_names[0], "y", "__rng_counter", "__learning_rate", "__iterations"]
    assert graph.output_names[:2] == ("loss", f"pred:{model.output_names[0]}")
    assert "update:optimizer/momentum/" + model.weights[0].path in graph.output_names
    with pytest.raises(ValueError, match="unknown backend"):
        model.compile("sgd", "mse", backend="gpu")
