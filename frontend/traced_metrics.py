"""Metric updates inside kc.function: the NumPy formulas of metrics.py written in kc ops.

Mean (and every MeanMetricWrapper: the accuracies, MSE/MAE, loss metrics, user functions) and Sum
update their total/count Variables with traced assign_add, so metric state is graph state. A metric
whose update has no traced form here raises, naming it, instead of reading a traced tensor's value.
"""
from __future__ import annotations

from . import metrics as M
from . import ops
from .tensor import KTensor, convert_to_tensor


def mean_update(metric, values, sample_weight, add_count=True):
    values, sample_weight = _samplewise(values, sample_weight)
    metric.total.assign_add(ops.sum(values))
    if not add_count:
        return
    if sample_weight is not None:
        metric.count.assign_add(ops.sum(ops.add(sample_weight, ops.zeros_like(values))))
    elif values.ndim == 0:
        metric.count.assign_add(1.0)
    else:
        metric.count.assign_add(ops.sum(ops.ones_like(values)))


def mean_result(metric):
    count = metric.count
    positive = ops.greater(count, 0.0)
    return ops.where(positive, ops.divide(metric.total, ops.where(positive, count, 1.0)), 0.0)


def _samplewise(values, sample_weight):
    """keras reduce_to_samplewise_values on tensors: one (weighted) value per sample."""
    values = ops.cast(convert_to_tensor(values), "float32")
    if sample_weight is not None:
        sample_weight = ops.cast(convert_to_tensor(sample_weight), "float32")
        values, sample_weight = _same_rank(values, sample_weight)
        if values.ndim > sample_weight.ndim:
            values = ops.mean(values, axis=tuple(range(sample_weight.ndim, values.ndim)))
        values = ops.multiply(values, sample_weight)
        if sample_weight.ndim > 1:
            sample_weight = ops.mean(sample_weight, axis=tuple(range(1, sample_weight.ndim)))
    if values.ndim > 1:
        values = ops.mean(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


def _same_rank(x1, x2):
    """keras squeeze_or_expand_to_same_rank."""
    if x1.ndim == x2.ndim + 1 and x1.shape[-1] == 1:
        return (x1, ops.expand_dims(x2, -1)) if x2.ndim == 1 else (ops.squeeze(x1, -1), x2)
    if x2.ndim == x1.ndim + 1 and x2.shape[-1] == 1:
        return (ops.expand_dims(x1, -1), x2) if x1.ndim == 1 else (x1, ops.squeeze(x2, -1))
    return x1, x2


# -- per-sample functions ----------------------------------------------------------------------
def accuracy(y_true, y_pred):
    y_true, y_pred = _same_rank(y_true, y_pred)
    return ops.cast(ops.equal(y_true, ops.cast(y_pred, y_true.dtype)), "float32")


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = _same_rank(y_true, y_pred)
    return ops.cast(ops.equal(y_true, ops.cast(ops.greater(y_pred, threshold), y_true.dtype)), "float32")


def categorical_accuracy(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == y_pred.shape[-1]:
        y_true = ops.argmax(y_true, axis=-1)
    return _match_argmax(y_true, y_pred)


def sparse_categorical_accuracy(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return _match_argmax(y_true, y_pred)


def _match_argmax(labels, y_pred):
    if labels.ndim != y_pred.ndim - 1:
        raise ValueError(f"accuracy: labels of shape {labels.shape} do not match predictions {y_pred.shape}")
    predicted = ops.argmax(y_pred, axis=-1)
    return ops.cast(ops.equal(ops.cast(labels, predicted.dtype), predicted), "float32")


def mean_squared_error(y_true, y_pred):
    y_true, y_pred = _same_rank(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"))
    return ops.mean(ops.square(ops.subtract(y_true, y_pred)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    y_true, y_pred = _same_rank(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"))
    return ops.mean(ops.abs(ops.subtract(y_true, y_pred)), axis=-1)


_TWINS = {M.accuracy: accuracy, M.binary_accuracy: binary_accuracy, M.categorical_accuracy: categorical_accuracy,
          M.sparse_categorical_accuracy: sparse_categorical_accuracy, M.mean_squared_error: mean_squared_error,
          M.mean_absolute_error: mean_absolute_error}


def wrapper_update(metric, y_true, y_pred, sample_weight):
    fn = _TWINS.get(metric._fn) or getattr(metric._fn, "traced", None)
    if fn is None:
        unsupported(metric)
    y_true, y_pred = convert_to_tensor(y_true), convert_to_tensor(y_pred)
    mean_update(metric, fn(y_true, y_pred, **metric._fn_kwargs), sample_weight)


def unsupported(metric):
    raise NotImplementedError(f"metric '{metric.name}' ({type(metric).__name__}) cannot be updated inside "
                              "kc.function yet; update it outside the function on the returned predictions")


def is_traced(*xs) -> bool:
    """True inside kc.function's trace (any traced input, or an active stateful trace)."""
    from .state_trace import active
    return active() is not None or any(isinstance(x, KTensor) and x.is_traced for x in xs)
