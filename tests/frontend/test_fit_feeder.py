"""fit's lean epoch (frontend/training/fit_feeder.py) trains exactly as the general step does."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.compiler.jit import NativeError
from kcompile.frontend.training import fit_feeder
from kcompile.frontend.training.callback_base import Callback, CallbackList


def _model(optimizer="rmsprop", metrics=("accuracy",)):
    m = kc.Sequential([layers.Input(shape=(12,)), layers.Dense(16, activation="relu"), layers.Dropout(0.25, seed=7),
                       layers.Dense(4, activation="softmax")])
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    m.set_weights([np.linspace(-0.5, 0.5, w.size, dtype=np.float32).reshape(w.shape) for w in m.get_weights()])
    return m


def _data(n=150):
    rng = np.random.default_rng(0)
    return rng.random((n, 12), dtype=np.float32), rng.integers(0, 4, n).astype(np.uint8)


class _BatchLogs(Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_batch_end(self, batch, logs=None):   # (the alias: on_train_batch_end calls it)
        self.logs.append(dict(logs))


class _Meddler(Callback):
    """Changes the learning rate and replaces the weights' arrays between batches."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2:
            self.model.optimizer.learning_rate = 0.01

    def on_train_batch_end(self, batch, logs=None):
        if batch == 3:
            self.model.set_weights([w * 0.5 for w in self.model.get_weights()])


def _fit(monkeypatch, lean: bool, shuffle: bool, callback_cls=None, strided=False, **kwargs):
    """(weights, history, per-batch logs, iterations, whether the lean epoch ran) of one fit."""
    used = []
    create = fit_feeder.FitFeeder.create

    def spy(*args):
        feeder = create(*args) if lean else None
        used.append(feeder is not None)
        return feeder
    monkeypatch.setattr(fit_feeder.FitFeeder, "create", spy)
    m = _model(**kwargs)
    x, y = _data()
    if strided:   # rows of another layout: copied into the batch buffer in Python (_Source.fill)
        x = np.repeat(x, 2, axis=1)[:, ::2]
    np.random.seed(5)
    cbs = [_BatchLogs()] + ([callback_cls()] if callback_cls else [])
    h = m.fit(x, y, batch_size=32, epochs=3, verbose=0, shuffle=shuffle, callbacks=cbs, validation_split=0.1)
    return m.get_weights(), h.history, cbs[0].logs, int(m.optimizer.iterations), all(used)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("callback_cls", [None, _Meddler])
def test_lean_epoch_is_bit_identical(monkeypatch, shuffle, callback_cls):
    w_lean, h_lean, logs_lean, it_lean, used = _fit(monkeypatch, True, shuffle, callback_cls)
    w_gen, h_gen, logs_gen, it_gen, _ = _fit(monkeypatch, False, shuffle, callback_cls)
    assert used, "the lean epoch should run for this model"
    assert all(np.array_equal(a, b) for a, b in zip(w_lean, w_gen))
    assert h_lean == h_gen and logs_lean == logs_gen and it_lean == it_gen == 3 * 5
    assert len(logs_lean) == 15 and set(logs_lean[0]) == {"loss", "accuracy"}


@pytest.mark.parametrize("shuffle", [True, False])
def test_strided_data(monkeypatch, shuffle):
    lean, general = (_fit(monkeypatch, use, shuffle, strided=True) for use in (True, False))
    assert lean[4] and all(np.array_equal(a, b) for a, b in zip(lean[0], general[0])) and lean[1:3] == general[1:3]


def test_optimizer_with_schedule_and_adam(monkeypatch):
    schedule = kc.optimizers.schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5)
    lean = _fit(monkeypatch, True, True, optimizer=kc.optimizers.Adam(learning_rate=schedule))
    general = _fit(monkeypatch, False, True, optimizer=kc.optimizers.Adam(learning_rate=schedule))
    assert lean[4] and all(np.array_equal(a, b) for a, b in zip(lean[0], general[0])) and lean[1] == general[1]


def test_numpy_side_metrics_take_the_general_step(monkeypatch):
    *_, used = _fit(monkeypatch, True, True, metrics=("accuracy", "sparse_top_k_categorical_accuracy"))
    assert not used


def test_sample_weights_take_the_general_step():
    m = _model()
    x, y = _data()
    assert fit_feeder.FitFeeder.create(m, ([x], [y], np.ones(len(x), np.float32)), [np.arange(32)], True,
                                       CallbackList()) is None


def test_gathered_rows_are_bounds_checked():
    """A row index outside the data stops the native step before anything is read or updated."""
    m = _model()
    x, y = _data(64)
    m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    batches = [np.array([3, 1, 2, 0]), np.array([5, 4, 6, 7])]
    feeder = fit_feeder.FitFeeder.create(m, ([x], [y], None), batches, True, CallbackList())
    assert feeder is not None and feeder.addresses is not None
    feeder.indices[1][2] = len(x)   # (create checked them; this one changes behind its back)
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(NativeError, match="row index is outside the data"):
        feeder.run_epoch(batches)
    after = m.get_weights()
    assert not np.array_equal(before[0], after[0])   # the first batch trained ...
    feeder.indices[1][2] = -1
    again = [w.copy() for w in after]
    with pytest.raises(NativeError, match="row index is outside the data"):
        feeder._step(batches[1], 1)
    assert all(np.array_equal(a, b) for a, b in zip(again, m.get_weights()))   # ... the bad one did not run


def test_gather_records_are_checked():
    m = _model()
    x, y = _data(64)
    m.fit(x, y, batch_size=32, epochs=1, verbose=0)
    (runner,) = [r for key, r in m._compiled.step_cache.items() if key[0] == "train"]
    bound = runner._bound_call()
    import ctypes
    with pytest.raises(ValueError, match="no such batched input"):
        bound.gather_from(64, (ctypes.c_int64 * 3)(99, x.ctypes.data, 48))
    with pytest.raises(ValueError, match="rows of 48 bytes"):
        bound.gather_from(64, (ctypes.c_int64 * 3)(0, x.ctypes.data, 96))


def test_hook_overrides():
    class Begin(Callback):
        def on_batch_begin(self, batch, logs=None):
            pass

    class Duck:
        def on_train_batch_end(self, batch, logs=None):
            pass
    assert not fit_feeder.overrides(Callback(), "on_train_batch_begin")
    assert fit_feeder.overrides(Begin(), "on_train_batch_begin")
    assert not fit_feeder.overrides(Begin(), "on_train_batch_end")
    assert fit_feeder.overrides(Duck(), "on_train_batch_end")
    own = Callback()
    own.on_train_batch_end = lambda batch, logs=None: None
    assert fit_feeder.overrides(own, "on_train_batch_end")
