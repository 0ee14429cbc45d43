"""Callback (every Keras 3 hook, all no-ops) and CallbackList (calls them in order)."""
from __future__ import annotations


class Callback:
    """Base class: override any hook; `self.model` and `self.params` are set by fit/evaluate/predict."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): self.on_batch_begin(batch, logs)
    def on_train_batch_end(self, batch, logs=None): self.on_batch_end(batch, logs)
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList(Callback):
    """Forwards every hook to each callback in order."""

    def __init__(self, callbacks=None, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks or [])
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_model(self, model):
        self.model = model
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        self.params = params
        for c in self.callbacks:
            c.set_params(params)


def _forward(hook):
    """Keras passes logs positionally (user hooks are often written `def on_epoch_end(self, epoch, logs)`)."""
    if hook.endswith(("train_begin", "train_end", "test_begin", "test_end", "predict_begin", "predict_end")):
        def call(self, logs=None):
            for c in self.callbacks:
                getattr(c, hook)(logs)
    else:
        def call(self, index, logs=None):
            for c in self.callbacks:
                getattr(c, hook)(index, logs)
    call.__name__ = hook
    return call


for _hook in HOOKS:
    setattr(CallbackList, _hook, _forward(_hook))
