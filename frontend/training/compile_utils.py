"""What compile() resolves: the optimizer, a loss and weight per output, metrics per output, trackers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcompile.frontend import losses as losses_mod
from kcompile.frontend import metrics as metrics_mod
from kcompile.frontend import optimizers


class Compiled:
    """compile()'s arguments resolved against the model's outputs; metrics resolved on first data."""

    def __init__(self, model, optimizer, loss, loss_weights, metrics, weighted_metrics, backend):
        self.optimizer = optimizers.get(optimizer if optimizer is not None else "rmsprop")
        self._spec = (loss, loss_weights, metrics, weighted_metrics)
        self.output_names: list | None = None  # bound once the model is built (compile may come first)
        self.metrics: list | None = None       # [MetricEntry], resolved on the first data
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
        loss, loss_weights, metrics, weighted_metrics = self._spec
        names = list(model.output_names)
        self.losses = [losses_mod.get(x) for x in _per_output(loss, names, "loss")]
        self.loss_weights = _weights(loss_weights, names)
        self.metrics_spec = _per_output(metrics, names, "metrics", nested=True)
        self.weighted_metrics_spec = _per_output(weighted_metrics, names, "weighted_metrics", nested=True)
        if len(names) > 1:
            self.output_loss_trackers = [metrics_mod.Mean(name=f"{n}_loss") for n in names]
        self.output_names = names
        return self

    def resolve_metrics(self, ys, pred_shapes):
        """Turn names into Metric objects; "accuracy"/"acc" picks binary/sparse/categorical like Keras 3."""
        if self.metrics is not None:
            return
        self.metrics, counters = [], {}
        for weighted, specs in ((False, self.metrics_spec), (True, self.weighted_metrics_spec)):
            for i, spec in enumerate(specs):
                for ident in spec or []:
                    m = _metric_for(ident, ys[i] if ys else None, pred_shapes[i])
                    self.metrics.append(MetricEntry(self._log_name(m.name, i, weighted, counters), m, i, weighted))

    def _log_name(self, name, output, weighted, counters):
        """Keras 3 naming: "<output>_" prefix with several outputs; clashes get "weighted_" or "_<n>"."""
        prefix = f"{self.output_names[output]}_" if len(self.output_names) > 1 else ""
        full = prefix + name
        if full in counters and weighted:
            full = f"{prefix}weighted_{name}"
        if full not in counters:
            counters[full] = 1
            return full
        counters[full] += 1
        return f"{full}_{counters[full] - 1}"

    def update_metrics(self, ys, preds, sample_weight, skip=frozenset()):
        """Plain metrics ignore sample weights and weighted_metrics use them, as in Keras 3; metrics
        whose ids are in `skip` were updated by the compiled step itself."""
        self.resolve_metrics(ys, [p.shape for p in preds])
        for e in self.metrics:
            if id(e.metric) in skip:
                continue
            e.metric.update_state(ys[e.output], preds[e.output], sample_weight=sample_weight if e.weighted else None)

    def has_metrics(self) -> bool:
        """Whether compile() was given metrics or weighted_metrics (Keras 3 then tracks compile_metrics)."""
        return any(_listify(spec) for spec in self._spec[2:4] if not isinstance(spec, dict)) or any(
            any(_listify(v) for v in spec.values()) for spec in self._spec[2:4] if isinstance(spec, dict))

    def metric_names(self) -> list:
        names = ["loss"] + [t.name for t in self.output_loss_trackers]
        return names + [e.name for e in self.metrics or []]

    def logs(self, ordered=False) -> dict:
        values = {"loss": _mean_result(self.loss_tracker)}
        values.update({t.name: _mean_result(t) for t in self.output_loss_trackers})
        for e in self.metrics or []:
            values[e.name] = _mean_result(e.metric) if _plain_mean(e.metric) else _to_float(e.metric.result())
        return values if ordered else dict(sorted(values.items()))


@dataclass
class MetricEntry:
    name: str          # the log / History key
    metric: object
    output: int        # index of the model output it watches
    weighted: bool     # from weighted_metrics: updated with the sample weights


def _plain_mean(metric) -> bool:
    return isinstance(metric, metrics_mod.Mean) and type(metric).result is metrics_mod.Mean.result


def _mean_result(m) -> float:
    """float(Mean.result()) read straight from its arrays: fit asks every step, and result() pays for
    kc.function's trace checks and two copies (the same arithmetic: f32 total / count)."""
    count = float(m.count.value_array)
    return 0.0 if count == 0 else float(np.float32(m.total.value_array / count))


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
        if n == 1:
            return [spec]
        if len(spec) != n:
            raise ValueError(f"compile({what}=...): with {n} outputs ({names}) give a list with one entry per "
                             f"output or a dict by output name, got {len(spec)} entries")
        return [_listify(s) for s in spec]
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
