"""History: the callback fit returns, with Keras 3's per-epoch `history` dict."""
from __future__ import annotations

from kcompile.frontend.training.callback_base import Callback


class History(Callback):
    """Records every epoch's logs: history["loss"][i] is epoch i's value; `epoch` lists epoch indices."""

    def __init__(self):
        super().__init__()
        self.history: dict = {}
        self.epoch: list = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        self.model.history = self
