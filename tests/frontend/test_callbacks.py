"""Callbacks: hook order, EarlyStopping (restore_best_weights), ModelCheckpoint, ReduceLROnPlateau,
TerminateOnNaN, CSVLogger, LambdaCallback, progress output."""
import csv
import io

import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.frontend import callbacks

RNG = np.random.default_rng(5)
X = RNG.standard_normal((64, 4)).astype("float32")
Y = (X @ np.array([[1.0], [2.0], [-1.0], [0.5]], np.float32)).astype("float32")


def make_model(lr=0.01):
    model = kc.Sequential([layers.Dense(1, input_shape=(4,))])
    model.set_weights([np.zeros((4, 1), np.float32), np.zeros(1, np.float32)])
    model.compile(kc.optimizers.SGD(lr), "mse", metrics=["mae"], backend="reference")
    return model


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append(name)
        return object.__getattribute__(self, name)


def test_hook_order_and_params():
    rec = Recorder()
    make_model().fit(X, Y, batch_size=32, epochs=2, validation_data=(X, Y), callbacks=[rec], verbose=0)
    epoch = ["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 2 + \
        ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 2 + ["on_test_end", "on_epoch_end"]
    assert rec.calls == ["on_train_begin"] + epoch * 2 + ["on_train_end"]
    assert rec.params == {"verbose": 0, "epochs": 2, "steps": 2}


def test_early_stopping_restores_best_weights():
    model = make_model(lr=0.05)
    seen = []
    bump = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((logs["val_loss"],
                                                                                  model.get_weights())))
    # the "validation" targets move away from the training targets, so val_loss rises after a while
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(X, Y, epochs=50, validation_data=(X, -Y), callbacks=[bump, stop], verbose=0)
    losses = hist.history["val_loss"]
    best = int(np.argmin(losses))
    assert len(losses) == best + 3 < 50 and stop.stopped_epoch == best + 2
    for got, want in zip(model.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(got, want)


def test_early_stopping_modes_and_min_delta():
    es = callbacks.EarlyStopping(monitor="val_mae")
    model = make_model()
    model.fit(X, Y, verbose=0)  # metrics are resolved on the first data, as in Keras
    es.set_model(model)
    es._set_monitor_op()
    assert es.monitor_op is np.less and es.min_delta == 0
    acc = callbacks.EarlyStopping(monitor="accuracy", min_delta=0.1, mode="max")
    acc._set_monitor_op()
    assert acc._is_improvement(0.75, 0.6) and not acc._is_improvement(0.65, 0.6)


def test_model_checkpoint_save_best_only(tmp_path):
    model = make_model()
    path = str(tmp_path / "ckpt-{epoch:02d}.weights")
    ck = callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True, save_weights_only=True)
    model.fit(X, Y, epochs=3, callbacks=[ck], verbose=0)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ckpt-01.weights", "ckpt-02.weights", "ckpt-03.weights"]  # loss improves every epoch
    fresh = make_model()
    fresh.load_weights(str(tmp_path / "ckpt-03.weights"))
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    whole = callbacks.ModelCheckpoint(str(tmp_path / "model.keras"), monitor="val_loss", save_best_only=True)
    model.fit(X, Y, epochs=2, validation_data=(X, -Y), callbacks=[whole], verbose=0)
    loaded = kc.models.load_model(str(tmp_path / "model.keras"))
    assert loaded.predict(X[:2], verbose=0).shape == (2, 1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_reduce_lr_on_plateau():
    model = make_model(lr=0.01)
    cb = callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=0.002)
    hist = model.fit(X, Y, epochs=6, validation_data=(X, -Y), callbacks=[cb], verbose=0)
    lrs = hist.history["learning_rate"]
    assert lrs[0] == pytest.approx(0.01) and min(lrs) >= 0.002 - 1e-9
    assert float(model.optimizer.learning_rate) < 0.01


@pytest.mark.filterwarnings("ignore:overflow", "ignore:invalid value")
def test_terminate_on_nan():
    model = make_model(lr=1e6)
    hist = model.fit(X * 1e3, Y, epochs=20, batch_size=8, callbacks=[callbacks.TerminateOnNaN()], verbose=0)
    assert len(hist.history["loss"]) < 20


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    make_model().fit(X, Y, epochs=3, validation_split=0.25, callbacks=[callbacks.CSVLogger(str(path))], verbose=0)
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    make_model().fit(X, Y, epochs=1, callbacks=[callbacks.CSVLogger(str(path), append=True)], verbose=0)
    assert len(list(csv.DictReader(open(path)))) == 4


def test_progress_output_verbose_1_and_2(capsys):
    model = make_model()
    model.fit(X, Y, epochs=2, batch_size=16, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/2" and out[1].startswith("4/4 - ") and "loss: " in out[1] and len(out) == 4
    model.fit(X, Y, epochs=1, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n4/4 ━━━━━━━━━━━━━━━━━━━━ ") and "mae: " in out
    model.fit(X, Y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_ending=print)
    stream = io.StringIO()
    assert callbacks.ProgbarLogger(stream).stream is stream
