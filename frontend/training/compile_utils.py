"""What compile() resolves: the optimizer, a loss and weight per output, metrics per output, trackers."""
from __future__ import annotations

from kcompile.frontend import losses as losses_mod
from kcompile.frontend import metrics as metrics_mod
from kcompile.frontend import optimizers


class Compiled:
    """compile()'s arguments resolved against the model's outputs; metrics resolved on first data."""

    def __init__(self, model, optimizer, loss, loss_weights, metrics, backend):
        self.optimizer = optimizers.get(optimizer if optimizer is not None else "rmsprop")
        self._spec = (loss, loss_weights, metrics)
        self.output_names: list | None = None  # bound once the model is built (compile may come first)
        self.metrics: list | None = None       # per output: [(log name, Metric)], resolved on first data
        self.backend = backend
        self.loss_tracker = metrics_mod.Mean(name="loss")
        self.output_loss_trackers: list = []
        self.step_cache: dict = {}
        if model._is_built():
            self.bind(model)

    def bind(self, model):
        """Resolve losses, loss weights and metric specs per output of the (built) model."""
        if self.output_names is not None:
            return self
        loss, loss_weights, metrics = self._spec
        names = list(model.output_names)
        self.losses = [losses_mod.get(x) for x in _per_output(loss, names, "loss")]
        self.loss_weights = _weights(loss_weights, names)
        self.metrics_spec = _per_output(metrics, names, "metrics", nested=True)
        if len(names) > 1:
            self.output_loss_trackers = [metrics_mod.Mean(name=f"{n}_loss") for n in names]
        self.output_names = names
        return self

    def resolve_metrics(self, ys, pred_shapes):
        """Turn names into Metric objects; "accuracy"/"acc" picks binary/sparse/categorical like Keras 3."""
        if self.metrics is not None:
            return
        prefix = len(self.output_names) > 1
        self.metrics = []
        for i, spec in enumerate(self.metrics_spec):
            resolved = []
            for ident in spec or []:
                m = _metric_for(ident, ys[i] if ys else None, pred_shapes[i])
                resolved.append((f"{self.output_names[i]}_{m.name}" if prefix else m.name, m))
            self.metrics.append(resolved)

    def all_metrics(self) -> list:
        return [self.loss_tracker] + self.output_loss_trackers + [m for per in self.metrics or [] for _, m in per]

    def metric_names(self) -> list:
        names = ["loss"] + [t.name for t in self.output_loss_trackers]
        return names + [n for per in self.metrics or [] for n, _ in per]

    def logs(self, ordered=False) -> dict:
        values = {"loss": float(self.loss_tracker.result())}
        values.update({t.name: float(t.result()) for t in self.output_loss_trackers})
        for per in self.metrics or []:
            for name, m in per:
                values[name] = _to_float(m.result())
        return values if ordered else dict(sorted(values.items()))


def _to_float(v):
    v = v.numpy() if hasattr(v, "numpy") else v
    try:
        return float(v)
    except TypeError:
        return v


def _metric_for(ident, y, pred_shape):
    if isinstance(ident, str) and ident.lower() in ("accuracy", "acc"):
        if y is None:
            raise ValueError(f"metric {ident!r} needs target data to pick its kind")
        is_binary = pred_shape[-1] == 1
        is_sparse = y.ndim < len(pred_shape) or (y.shape[-1] == 1 and pred_shape[-1] > 1)
        cls = metrics_mod.BinaryAccuracy if is_binary else (
            metrics_mod.SparseCategoricalAccuracy if is_sparse else metrics_mod.CategoricalAccuracy)
        return cls(name=ident)
    return metrics_mod.get(ident)


def _per_output(spec, names, what, nested=False):
    """One entry per output from a single value, a list/tuple (one per output) or a dict by output name."""
    n = len(names)
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(f"compile({what}=...): unknown output name(s) {unknown}; the model's outputs are {names}")
        return [_listify(spec.get(k)) if nested else spec.get(k) for k in names]
    if nested:
        if spec is None:
            return [[] for _ in names]
        spec = list(spec) if isinstance(spec, (list, tuple)) else [spec]
        if n > 1 and len(spec) == n and all(isinstance(s, (list, tuple)) or s is None for s in spec):
            return [_listify(s) for s in spec]
        return [list(spec) for _ in names]
    if isinstance(spec, (list, tuple)):
        if len(spec) != n:
            raise ValueError(f"compile({what}=...): a list needs one entry per output ({n}: {names}), got {len(spec)}")
        return list(spec)
    return [spec] * n


def _listify(x):
    return [] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]


def _weights(loss_weights, names):
    if loss_weights is None:
        return [1.0] * len(names)
    return [1.0 if w is None else float(w) for w in _per_output(loss_weights, names, "loss_weights")]
