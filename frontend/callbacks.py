"""Keras 3 callbacks: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN, CSVLogger,
LambdaCallback, ProgbarLogger, History, LearningRateScheduler and BackupAndRestore (behaviour follows
keras/src/callbacks)."""
from __future__ import annotations

import collections
import csv
import os
import sys
import warnings

import numpy as np

from kcompile.frontend.backup import BackupAndRestore  # noqa: F401
from kcompile.frontend.training.callback_base import Callback, CallbackList  # noqa: F401
from kcompile.frontend.training.history import History  # noqa: F401
from kcompile.frontend.training.progbar import Progbar


class MonitorCallback(Callback):
    """Shared monitor/mode/min_delta logic (Keras's MonitorCallback)."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor, self.mode, self.best = monitor, mode, baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _set_monitor_op(self):
        if self.mode == "min":
            self.monitor_op = np.less
        elif self.mode == "max":
            self.monitor_op = np.greater
        else:
            self.monitor_op = _auto_direction(self.model, self.monitor.removeprefix("val_"))
            if self.monitor_op is None:
                raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but kcompile "
                                 "isn't able to automatically determine whether that metric should be maximized "
                                 "or minimized. Pass `mode='max'` or `mode='min'`.")
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, value, reference):
        return reference is None or bool(self.monitor_op(value - self.min_delta, reference))


def _auto_direction(model, metric_name):
    if metric_name == "loss" or metric_name.endswith("_loss"):
        return np.less
    tracked = getattr(model, "metrics", None) or []
    for m in [inner for m in tracked for inner in getattr(m, "metrics", [m])]:   # compile_metrics flattened
        if m.name == metric_name and hasattr(m, "_direction"):
            return np.greater if m._direction == "up" else np.less
    return None


class EarlyStopping(MonitorCallback):
    """Stop when the monitored value stops improving for `patience` epochs."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait = self.stopped_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best = self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = _monitor_value(self, logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _monitor_value(cb, logs):
    value = (logs or {}).get(cb.monitor)
    if value is None:
        warnings.warn(f"{type(cb).__name__} conditioned on metric `{cb.monitor}` which is not available. "
                      f"Available metrics are: {','.join((logs or {}).keys())}", stacklevel=3)
    return value


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` after `patience` epochs without improvement."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor, self.min_lr, self.patience = factor, min_lr, patience
        self.verbose, self.cooldown = verbose, cooldown
        self.cooldown_counter = self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = _monitor_value(self, logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and self._reduce(epoch):
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch) -> bool:
        old_lr = float(self.model.optimizer.learning_rate)
        if old_lr <= np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        self.model.optimizer.learning_rate = new_lr
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
        return True


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch loss is NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class ModelCheckpoint(MonitorCallback):
    """Save the model (or its weights) each epoch, or only when the monitored value improves.

    Writes are atomic: the file is written under a temporary name and renamed into place, so a
    crash never leaves a half-written checkpoint. `filepath` may use {epoch} and log keys ({val_loss:.2f}).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint: only save_freq='epoch' is supported by kcompile")
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if not self.save_best_only:
            return self._save(path)
        if self.monitor_op is None:
            self._set_monitor_op()
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
        elif self._is_improvement(current, self.best):
            if self.verbose > 0:
                prev = "inf" if self.best is None else f"{self.best:.5f}"
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {prev} to {current:.5f}, "
                      f"saving model to {path}")
            self.best = current
            self._save(path)
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")

    def _save(self, path):
        # model.save / save_weights write a temporary file and rename it into place (saving.py)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class CSVLogger(Callback):
    """Stream epoch results to a CSV file: an "epoch" column, then the log keys sorted."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = self.writer = self.csv_file = None

    def on_train_begin(self, logs=None):
        has_header = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.append_header = not has_header
        self.keys = self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((k, _csv_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
            self.csv_file = self.writer = None


def _csv_value(v):
    if isinstance(v, str):
        return v
    if isinstance(v, collections.abc.Iterable) and not (isinstance(v, np.ndarray) and v.ndim == 0):
        return f'"[{", ".join(map(str, v))}]"'
    return v


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_end=lambda epoch, logs: ..., etc."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in hooks.items():
            if name in ("on_batch_begin", "on_batch_end"):
                name = "on_train_" + name[3:]
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            if fn is not None:
                setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch's start to schedule(epoch, lr) (or schedule(epoch)), as Keras."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:   # the old one-argument API
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = learning_rate
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ProgbarLogger(Callback):
    """Prints Keras-style progress: verbose=1 a live bar, verbose=2 one line per epoch."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream or sys.stdout
        self.bar = None

    def _verbose(self):
        return self.params.get("verbose", 1)

    def on_epoch_begin(self, epoch, logs=None):
        if self._verbose():
            self.stream.write(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}\n")
        self.bar = Progbar(self.params.get("steps"), self._verbose(), self.stream)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(self.params.get("steps") or 0, logs, finalize=True)

    def on_test_begin(self, logs=None):
        if self.params.get("evaluating"):
            self.bar = Progbar(self.params.get("steps"), self._verbose(), self.stream)

    def on_test_batch_end(self, batch, logs=None):
        if self.params.get("evaluating"):
            self.bar.update(batch + 1, logs)

    def on_test_end(self, logs=None):
        if self.params.get("evaluating"):
            self.bar.update(self.params.get("steps") or 0, logs, finalize=True)

    def on_predict_begin(self, logs=None):
        self.bar = Progbar(self.params.get("steps"), self._verbose(), self.stream)

    def on_predict_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1)

    def on_predict_end(self, logs=None):
        self.bar.update(self.params.get("steps") or 0, finalize=True)
