"""BackupAndRestore: save the training state every epoch; a rerun of fit resumes after the last saved epoch.

The state is the model's weights (kc's weights archive), the training state that `model.save` keeps too
(frontend/compile_state.py: the optimizer's step count, its slots by position among the trainable
variables, the dropout RNG counter; its arrays in optimizer.npz) and the epoch reached
(training_metadata.json, with the training state's JSON part). Each file is written to a temporary name
and renamed, so an interruption mid-save leaves the previous backup intact; the metadata goes last.
"""
from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np

from kcompile.frontend.compile_state import restore_training_state, training_state
from kcompile.frontend.saving import write_atomic
from kcompile.ir.load_budget import read_npz
from kcompile.frontend.training.callback_base import Callback


class BackupAndRestore(Callback):
    """Keras 3's BackupAndRestore (save_freq "epoch" or every N batches, delete_checkpoint)."""

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. "
                             "Expected either 'epoch' or an integer value.")
        if double_checkpoint:
            raise ValueError("BackupAndRestore: double_checkpoint=True is not supported by kcompile")
        self.backup_dir, self.save_freq, self.delete_checkpoint = os.fspath(backup_dir), save_freq, delete_checkpoint
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.kcompile")
        self._optimizer_path = os.path.join(self.backup_dir, "optimizer.npz")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._current_epoch, self._batches_seen = 0, 0

    def on_train_begin(self, logs=None):
        if not os.path.exists(self._metadata_path):
            return
        with open(self._metadata_path) as f:
            metadata = json.load(f)
        self.model.load_weights(self._weights_path)
        what = f"BackupAndRestore: {self._optimizer_path}"
        restore_training_state(self.model, metadata.get("training_state", {}), read_npz(self._optimizer_path, what),
                               what)
        self._current_epoch = int(metadata["epoch"])
        self.model._initial_epoch = self._current_epoch   # fit starts from here, as Keras

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch, self._batches_seen = epoch, 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches_seen += 1
        if self.save_freq != "epoch" and self._batches_seen % self.save_freq == 0:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self.save_freq == "epoch":
            self._save()

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)

    def _save(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        self.model.save_weights(self._weights_path, overwrite=True)
        meta, arrays = training_state(self.model)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(self._optimizer_path, lambda f: f.write(buf.getvalue()))
        metadata = {"epoch": self._current_epoch, "training_state": meta}
        write_atomic(self._metadata_path, lambda f: f.write(json.dumps(metadata).encode()))
