"""fit's train step accumulates the loss tracker and accuracies in the graph (native_metrics.py): the
logs and History equal the NumPy path's, the NumPy update is skipped for them, and what the graph
cannot accumulate (sample weights, other metrics) still runs in NumPy."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend.training import native_metrics

L = kc.layers


def _model(weights=None, metrics=("accuracy",), one_hot=False):
    m = kc.Sequential([L.Input(shape=(12,)), L.Dense(16, activation="relu"), L.Dense(5, activation="softmax")])
    loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    m.compile(optimizer="rmsprop", loss=loss, metrics=list(metrics))
    if weights is not None:
        m.set_weights(weights)
    return m


def _data(one_hot=False, label_shape=1):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((250, 12)).astype(np.float32)
    y = rng.integers(0, 5, 250)
    if one_hot:
        return x, np.eye(5, dtype=np.float32)[y]
    return x, y.reshape((250,) if label_shape == 1 else (250, 1))


def _histories(monkeypatch, fit_kwargs, **model_kwargs):
    """History of fit with metrics in the graph, and with the NumPy path (plan forced empty)."""
    x, y = _data(model_kwargs.get("one_hot", False), fit_kwargs.pop("label_shape", 1))
    first = _model(**model_kwargs)
    weights = first.get_weights()
    inside = first.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, **fit_kwargs).history
    step = [r for k, r in first._compiled.step_cache.items() if k[0] == "train"][0]
    with monkeypatch.context() as mp:
        mp.setattr(native_metrics, "plan", lambda *a, **k: [])
        numpy_path = _model(weights, **model_kwargs).fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
                                                         **fit_kwargs).history
    return inside, numpy_path, step


@pytest.mark.parametrize("one_hot, label_shape, metrics", [
    (False, 2, ("sparse_categorical_accuracy", "mae")), (True, 1, ("accuracy",)),
])
def test_logs_equal_the_numpy_path(monkeypatch, one_hot, label_shape, metrics):
    inside, numpy_path, step = _histories(monkeypatch, {"label_shape": label_shape}, one_hot=one_hot,
                                          metrics=metrics)
    assert len(step.native_metrics) == 2          # the loss tracker and the accuracy; "mae" stays in NumPy
    assert inside.keys() == numpy_path.keys()
    for k in inside:
        np.testing.assert_allclose(inside[k], numpy_path[k], rtol=2e-6, err_msg=k)


def test_sample_weights_keep_the_numpy_path(monkeypatch):
    sw = np.linspace(0.5, 1.5, 250).astype(np.float32)
    inside, numpy_path, step = _histories(monkeypatch, {"sample_weight": sw})
    assert not step.native_metrics
    for k in inside:
        np.testing.assert_allclose(inside[k], numpy_path[k], rtol=2e-6, err_msg=k)


def test_the_numpy_update_is_skipped_and_the_binding_kept(monkeypatch):
    x, y = _data()
    model = _model()
    calls = []
    tracker = model._compiled.loss_tracker
    real = type(tracker).update_state
    monkeypatch.setattr(type(tracker), "update_state", lambda self, *a, **k: (calls.append(self), real(self, *a, **k)))
    model.fit(x, y, batch_size=50, epochs=2, verbose=0)
    runner = [r for k, r in model._compiled.step_cache.items() if k[0] == "train"]
    bound = runner[0]._bound
    logs = model.train_on_batch(x[:50], y[:50], return_dict=True)
    assert tracker not in calls and len(runner) == 1   # one graph for fit and train_on_batch; the graph accumulated
    assert runner[0]._bound is bound                   # metrics reset in place: no new binding
    assert set(logs) == {"loss", "accuracy"}
    assert model.train_step_graph(y[:50]).inputs[-1].name != native_metrics.BATCH_INPUT   # the AOT step is plain


def test_train_on_batch_logs_describe_the_batch_alone():
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=50, epochs=1, verbose=0)
    pred = model.predict_on_batch(x[:50])
    logs = model.train_on_batch(x[:50], y[:50], return_dict=True)
    np.testing.assert_allclose(logs["accuracy"], np.mean(np.argmax(pred, -1) == y[:50]), rtol=1e-6)
    probs = pred[np.arange(50), y[:50]]
    np.testing.assert_allclose(logs["loss"], -np.mean(np.log(probs)), rtol=1e-4)   # (the loss before the update)
