"""Metrics accumulated inside the compiled train step: fit's loss tracker and accuracies cost no Python.

A metric whose state is a running total and count (Mean) and whose per-batch statistic the step can
compute (the loss; sparse and categorical accuracy, unweighted) gets its two state Variables as
parameters of the train-step graph, updated in place like the weights (meta["param_updates"]):
    total += statistic summed over the batch,  count += batch size ("__batch_size", fed per step).
fit and train_on_batch then never touch them per step (reset() zeroes them in place), and result()
reads the same arrays. The arithmetic is the NumPy path's (f32 sums of exact 0/1 matches; the loss
times the batch size), so the logs agree with it.
Anything else (sample weights, several outputs, other metrics) stays on the NumPy path.
"""
from __future__ import annotations

from kcompile.ir import TensorType, f32
from kcompile.frontend import metrics as M

BATCH_INPUT = "__batch_size"


def _native_statistic(metric):
    """The emitter of a metric's per-batch statistic (total's increment), or None if it runs in NumPy."""
    if not isinstance(metric, M.MeanMetricWrapper) or \
            type(metric).update_state is not M.MeanMetricWrapper.update_state:   # (a subclass's own update)
        return None
    statistics = {M.sparse_categorical_accuracy: _sparse_matches, M.categorical_accuracy: _categorical_matches}
    return statistics.get(metric._fn)


def _argmax_f32(b, x):
    return b.op("cast", b.op("argmax", x, axis=-1), dtype="f32")


def _count_equal(b, a, c):
    return b.op("reduce_sum", b.op("cast", b.op("equal", a, c), dtype="f32"))


def _sparse_matches(b, y, pred):
    labels = y if len(y.type.shape) == 1 else b.reshape(y, shape=("N",))   # (N, 1) labels, as Keras squeezes
    return _count_equal(b, labels, _argmax_f32(b, pred))


def _categorical_matches(b, y, pred):
    return _count_equal(b, _argmax_f32(b, y), _argmax_f32(b, pred))


def plan(compiled, y_types, has_sw) -> list:
    """[(Mean metric, statistic emitter or None for the loss)] the step accumulates (empty: none).
    compiled.metrics must be resolved (they are, once fit has seen the targets)."""
    if has_sw or len(compiled.output_names) != 1 or not y_types or y_types[0] is None:
        return []
    chosen = [(compiled.loss_tracker, None)]
    for e in compiled.metrics or []:
        emit = _native_statistic(e.metric)
        if emit is not None and not e.weighted and _fits(emit, tuple(y_types[0].shape)):
            chosen.append((e.metric, emit))
    return chosen


def _fits(emit, shape) -> bool:
    """Sparse labels are (N,) or (N, 1); one-hot targets (N, C)."""
    return len(shape) == 1 or (len(shape) == 2 and (emit is _categorical_matches or shape[1] == 1))


def emit(b, chosen: list, loss, y, pred) -> tuple:
    """Emit the accumulation: returns ({param name: Variable}, [(param name, updated Value)])."""
    batch = b.input(BATCH_INPUT, TensorType((), f32))
    variables, updated = {}, []
    for k, (metric, statistic) in enumerate(chosen):
        increment = b.op("mul", loss, batch) if statistic is None else statistic(b, y, pred)
        for var, delta in ((metric.total, increment), (metric.count, batch)):
            name = f"__metric/{k}/{var.name}"
            variables[name] = var
            updated.append((name, b.op("add", b.param(name, var.value_array), delta)))
    return variables, updated


def reset(metric) -> None:
    """reset_state, in place for a Mean's arrays (a bound train step keeps accumulating into them,
    with no new binding); a metric with its own reset_state, or inside kc.function, gets that."""
    if isinstance(metric, M.Mean) and type(metric).reset_state is M.Metric.reset_state and not M._traced():
        for v in metric.variables:
            v.value_array[...] = v._metric_initial
    else:
        metric.reset_state()
