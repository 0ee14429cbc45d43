"""Keras 3 metrics: stateful objects with update_state/result/reset_state, state held in Variables.

Where the work happens: during fit/evaluate the train/test-step graph outputs the predictions,
and every metric accumulates in NumPy on those outputs after each batch (built-in metrics
update with NumPy; a user's Metric subclass runs its own update_state on eager KTensors).
The formulas follow keras/src/metrics exactly (sample weights, thresholds, AUC's trapezoids).
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend import config

CLASS_NAMES: dict = {}


def _np(x, dtype=None):
    a = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    return a if dtype is None else a.astype(dtype)


class Metric:
    """Base class: subclasses create state with add_variable and implement update_state/result."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        CLASS_NAMES[cls.__name__] = cls

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        if dtype not in (None, "float32"):   # states and results are kept in float32 only
            raise NotImplementedError(f"metric '{self.name}': dtype={dtype!r} is not supported (float32 only)")
        self.dtype = dtype or config.floatx()
        self._variables: list = []

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        from kcompile.frontend.variables import Variable
        value = _initial(initializer, tuple(shape), dtype or self.dtype)
        v = Variable(value, name=name or f"variable_{len(self._variables)}", trainable=False,
                     dtype=dtype or self.dtype)
        v._metric_initial = value
        self._variables.append(v)
        return v

    add_weight = add_variable

    @property
    def variables(self):
        return list(self._variables)

    def reset_state(self):
        for v in self._variables:
            v.assign(v._metric_initial)

    def reset_states(self):
        """Keras 2's name for reset_state (the one Deep Learning with Python uses)."""
        self.reset_state()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _initial(initializer, shape, dtype):
    if isinstance(initializer, str):
        fill = {"zeros": 0.0, "ones": 1.0}.get(initializer)
        if fill is None:
            raise ValueError(f"metric variable initializer {initializer!r} is not supported; use 'zeros' or 'ones'")
        return np.full(shape, fill, dtype=np.dtype(dtype))
    if callable(initializer):
        return np.asarray(initializer(shape, dtype=dtype), dtype=np.dtype(dtype))
    return np.broadcast_to(np.asarray(initializer, dtype=np.dtype(dtype)), shape).copy()


# -- Mean and wrappers ---------------------------------------------------------------------------
def _squeeze_or_expand(x1, x2):
    """keras squeeze_or_expand_to_same_rank on NumPy arrays."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        return (x1, x2[..., None]) if x2.ndim == 1 else (x1[..., 0], x2)
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        return (x1[..., None], x2) if x1.ndim == 1 else (x1, x2[..., 0])
    return x1, x2


def reduce_to_samplewise_values(values, sample_weight, dtype):
    values = _np(values, dtype)
    if sample_weight is not None:
        sample_weight = _np(sample_weight, dtype)
        values, sample_weight = _squeeze_or_expand(values, sample_weight)
        if values.ndim > sample_weight.ndim:
            values = values.mean(axis=tuple(range(sample_weight.ndim, values.ndim)))
        sample_weight = np.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if sample_weight.ndim > 1:
            sample_weight = sample_weight.mean(axis=tuple(range(1, sample_weight.ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Mean(Metric):
    """Weighted mean of the values given: total / count."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")
        self.count = self.add_variable((), name="count")

    def update_state(self, values, sample_weight=None):
        if _traced():
            return _traced_metrics().mean_update(self, values, sample_weight)
        if np.ndim(values) == 0 and np.ndim(sample_weight) == 0:   # one (weighted) value: fit's loss per step
            w = 1 if sample_weight is None else _np(sample_weight, self.dtype)
            self.total.assign_add(_np(values, self.dtype) * w)
            self.count.assign_add(w)
            return
        values, sample_weight = reduce_to_samplewise_values(values, sample_weight, self.dtype)
        self.total.assign_add(np.sum(values))
        if sample_weight is not None:
            n = np.sum(sample_weight)
        else:
            n = values.shape[0] if values.ndim >= 1 else 1
        self.count.assign_add(n)

    def result(self):
        if _traced():
            return _traced_metrics().mean_result(self)
        count = float(self.count.numpy())
        return np.float32(0.0) if count == 0 else np.float32(self.total.numpy() / count)


class Sum(Metric):
    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")

    def update_state(self, values, sample_weight=None):
        if _traced():
            return _traced_metrics().mean_update(self, values, sample_weight, add_count=False)
        values, _ = reduce_to_samplewise_values(values, sample_weight, self.dtype)
        self.total.assign_add(np.sum(values))

    def result(self):
        if _traced():
            return self.total + 0.0
        return np.float32(self.total.numpy())


class MeanMetricWrapper(Mean):
    """Mean of a per-sample function fn(y_true, y_pred, **kwargs)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "metric"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        if _traced():
            return _traced_metrics().wrapper_update(self, y_true, y_pred, sample_weight)
        values = self._fn(_np(y_true), _np(y_pred), **self._fn_kwargs)
        super().update_state(_np(values), sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, **self._fn_kwargs}


# -- per-sample functions (NumPy; kc.metrics.* names as Keras) -----------------------------------
def accuracy(y_true, y_pred):
    y_true, y_pred = _squeeze_or_expand(_np(y_true), _np(y_pred))
    return (y_true == y_pred).astype(np.float32)  # Mean reduces each sample's values (Keras 3)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = _squeeze_or_expand(_np(y_true), _np(y_pred))
    y_pred = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == y_pred).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1]:
        y_true = np.argmax(y_true, axis=-1)
    return _match_argmax(y_true, y_pred)


def sparse_categorical_accuracy(y_true, y_pred):
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    return _match_argmax(y_true, y_pred)


def _match_argmax(labels, y_pred):
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"accuracy: labels of shape {labels.shape} do not match predictions {y_pred.shape}")
    return (labels.astype(np.int64) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return sparse_top_k_categorical_accuracy(np.argmax(_np(y_true), axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_true, y_pred = _np(y_true).astype(np.int64).reshape(-1), _np(y_pred)
    top = np.argsort(-y_pred, axis=-1, kind="stable")[..., :k]
    return (top == y_true[:, None]).any(axis=-1).astype(np.float32)


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _squeeze_or_expand(_np(y_true, np.float32), _np(y_pred, np.float32))
    return np.square(y_true - y_pred).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _squeeze_or_expand(_np(y_true, np.float32), _np(y_pred, np.float32))
    return np.abs(y_true - y_pred).mean(axis=-1)


def _loss_values(loss_name, **kwargs):
    def fn(y_true, y_pred):
        from kcompile.frontend import losses
        out = getattr(losses, loss_name)(y_true, y_pred, **kwargs)
        return out.numpy()
    fn.__name__ = loss_name

    def traced(y_true, y_pred):   # the same loss on traced tensors (inside kc.function)
        from kcompile.frontend import losses
        return getattr(losses, loss_name)(y_true, y_pred, **kwargs)
    fn.traced = traced
    return fn


# -- classes -------------------------------------------------------------------------------------
def _wrapper(cls_name, fn, default_name, direction, **defaults):
    def __init__(self, name=default_name, dtype=None, **kwargs):
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **{**defaults, **kwargs})
    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__, "_direction": direction,
                                                 "__doc__": f"Mean of {fn.__name__}."})


Accuracy = _wrapper("Accuracy", accuracy, "accuracy", "up")
BinaryAccuracy = _wrapper("BinaryAccuracy", binary_accuracy, "binary_accuracy", "up", threshold=0.5)
CategoricalAccuracy = _wrapper("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy", "up")
SparseCategoricalAccuracy = _wrapper("SparseCategoricalAccuracy", sparse_categorical_accuracy,
                                     "sparse_categorical_accuracy", "up")
TopKCategoricalAccuracy = _wrapper("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                   "top_k_categorical_accuracy", "up", k=5)
SparseTopKCategoricalAccuracy = _wrapper("SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
                                         "sparse_top_k_categorical_accuracy", "up", k=5)
MeanSquaredError = _wrapper("MeanSquaredError", mean_squared_error, "mean_squared_error", "down")
MeanAbsoluteError = _wrapper("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error", "down")


class _LossMetric(MeanMetricWrapper):
    loss_name = ""
    _direction = "down"

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(_loss_values(self.loss_name, **kwargs), name=name or self.loss_name, dtype=dtype)


class BinaryCrossentropy(_LossMetric):
    loss_name = "binary_crossentropy"


class CategoricalCrossentropy(_LossMetric):
    loss_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(_LossMetric):
    loss_name = "sparse_categorical_crossentropy"


class RootMeanSquaredError(Mean):
    _direction = "down"
    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _squeeze_or_expand(_np(y_true, np.float32), _np(y_pred, np.float32))
        super().update_state(np.square(y_true - y_pred), sample_weight)

    def result(self):
        return np.float32(np.sqrt(super().result()))


# -- confusion-matrix metrics ---------------------------------------------------------------------
def _confusion_update(y_true, y_pred, thresholds, sample_weight):
    """(tp, fp, tn, fn) per threshold, with prediction > threshold as positive (Keras)."""
    y_pred, y_true = _squeeze_or_expand(_np(y_pred, np.float32), _np(y_true))
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape")
    w = np.ones_like(y_pred)
    if sample_weight is not None:
        sw = _np(sample_weight, np.float32)
        w = np.broadcast_to(sw.reshape(sw.shape + (1,) * (y_pred.ndim - sw.ndim)), y_pred.shape)
    y_true, y_pred, w = y_true.astype(bool).reshape(-1), y_pred.reshape(-1), w.reshape(-1)
    pos = y_pred[None, :] > np.asarray(thresholds, np.float32)[:, None]
    t, f = y_true[None, :], ~y_true[None, :]
    return ((pos & t) * w).sum(1), ((pos & f) * w).sum(1), ((~pos & f) * w).sum(1), ((~pos & t) * w).sum(1)


def _check_thresholds(thresholds, top_k, class_id, who):
    if top_k is not None or class_id is not None:
        raise ValueError(f"{who}: top_k and class_id are not supported by kcompile")
    t = 0.5 if thresholds is None else thresholds
    return [float(x) for x in np.atleast_1d(t)], np.ndim(t) == 0


class _ThresholdMetric(Metric):
    kind = ""
    _direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name or self.kind, dtype=dtype)
        self.thresholds, self._scalar = _check_thresholds(thresholds, top_k, class_id, type(self).__name__)
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives")
        self.false_positives = self.add_variable((n,), name="false_positives")
        self.false_negatives = self.add_variable((n,), name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, _, fn = _confusion_update(y_true, y_pred, self.thresholds, sample_weight)
        self.true_positives.assign_add(tp)
        self.false_positives.assign_add(fp)
        self.false_negatives.assign_add(fn)

    def _ratio(self, other):
        tp = self.true_positives.numpy()
        denom = tp + other.numpy()
        out = np.where(denom > 0, tp / np.where(denom > 0, denom, 1), 0).astype(np.float32)
        return out[0] if self._scalar else out


class Precision(_ThresholdMetric):
    """tp / (tp + fp) at the given threshold(s), 0.5 by default."""
    kind = "precision"

    def result(self):
        return self._ratio(self.false_positives)


class Recall(_ThresholdMetric):
    """tp / (tp + fn) at the given threshold(s), 0.5 by default."""
    kind = "recall"

    def result(self):
        return self._ratio(self.false_negatives)


class AUC(Metric):
    """Area under the ROC or PR curve by Riemann sums over num_thresholds thresholds (Keras 3)."""

    _direction = "up"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None,
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        super().__init__(name=name or "auc", dtype=dtype)
        if multi_label or label_weights is not None:
            raise ValueError("AUC: multi_label and label_weights are not supported by kcompile")
        if curve.upper() not in ("ROC", "PR"):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["ROC", "PR"]')
        if summation_method.lower() not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        self.curve, self.summation_method = curve.upper(), summation_method.lower()
        self.from_logits = from_logits
        if thresholds is None:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        else:
            inner = sorted(float(t) for t in thresholds)
        self.thresholds = [0.0 - config.epsilon()] + inner + [1.0 + config.epsilon()]
        self.num_thresholds = len(self.thresholds)
        n = self.num_thresholds
        self.true_positives = self.add_variable((n,), name="true_positives")
        self.false_positives = self.add_variable((n,), name="false_positives")
        self.true_negatives = self.add_variable((n,), name="true_negatives")
        self.false_negatives = self.add_variable((n,), name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred, np.float32)
        if self.from_logits:
            y_pred = 1 / (1 + np.exp(-y_pred))
        tp, fp, tn, fn = _confusion_update(y_true, y_pred, self.thresholds, sample_weight)
        for var, delta in ((self.true_positives, tp), (self.false_positives, fp), (self.true_negatives, tn),
                           (self.false_negatives, fn)):
            var.assign_add(delta)

    def result(self):
        tp, fp = self.true_positives.numpy(), self.false_positives.numpy()
        tn, fn = self.true_negatives.numpy(), self.false_negatives.numpy()
        if self.curve == "PR" and self.summation_method == "interpolation":
            return _interpolate_pr_auc(tp, fp, fn)
        recall = _div_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _div_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _div_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return np.float32(np.sum((x[:-1] - x[1:]) * heights))


def _interpolate_pr_auc(tp, fp, fn):
    """Davis & Goadrich's interpolation of the PR curve, as Keras's AUC.interpolate_pr_auc."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    prec_slope = _div_no_nan(dtp, np.maximum(dp, 0))
    intercept = tp[1:] - prec_slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    safe_p_ratio = np.where(both, _div_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
    increment = _div_no_nan(prec_slope * (dtp + intercept * np.log(safe_p_ratio)), np.maximum(tp[1:] + fn[1:], 0))
    return np.float32(np.sum(increment))


def _div_no_nan(a, b):
    return np.where(b > 0, a / np.where(b > 0, b, 1), 0).astype(np.float32)


# -- lookup --------------------------------------------------------------------------------------
_BY_NAME = {
    "accuracy": Accuracy, "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "root_mean_squared_error": RootMeanSquaredError, "precision": Precision, "recall": Recall, "auc": AUC,
}

from kcompile.frontend.metrics_more import (  # noqa: E402,F401 (they subclass Metric)
    F1Score, FalseNegatives, FalsePositives, FBetaScore, MeanIoU, R2Score, TrueNegatives, TruePositives)

_BY_NAME.update({"f1_score": F1Score, "fbeta_score": FBetaScore, "r2_score": R2Score})


def get(identifier, name=None) -> Metric:
    """A Metric from a name (named as given, so "mae" logs as "mae"), a class, an instance or a function."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or CLASS_NAMES.get(identifier)
        if cls is None:
            raise ValueError(f"Could not interpret metric identifier: {identifier!r}; known: {sorted(_BY_NAME)}")
        return cls(name=name or identifier) if cls in _BY_NAME.values() else cls()
    if callable(identifier):
        return MeanMetricWrapper(_eager_function(identifier), name=name or identifier.__name__)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def _eager_function(fn):
    """A user's per-sample metric function written with kc.ops, run on eager KTensors."""
    def run(y_true, y_pred):
        from kcompile.frontend.tensor import convert_to_tensor
        return convert_to_tensor(fn(convert_to_tensor(y_true), convert_to_tensor(y_pred))).numpy()
    run.__name__ = getattr(fn, "__name__", "metric")
    run.traced = fn
    return run


def _traced() -> bool:
    """Inside kc.function's trace: metric state is graph state, updated with kc ops (traced_metrics.py)."""
    return _traced_metrics().is_traced()


def _traced_metrics():
    from kcompile.frontend import traced_metrics
    return traced_metrics


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
