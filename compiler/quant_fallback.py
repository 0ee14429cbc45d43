"""Accuracy-aware int8: keep the most sensitive layers in float until the accuracy drop is within a bound.

Sensitivity of a layer = the accuracy lost when only that layer is int8. Layers go back to float
most sensitive first, re-measuring the whole int8 model after each, until its drop <= max_drop.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph
from kcompile.passes.quant_plan import find_groups
from kcompile.passes.quantize import quantize_int8

from .calibrate import CalibrationError, check_calibration_data, runner


def accuracy(graph: Graph, x: list, y: np.ndarray, backend: str = "native", batch_size: int = 256) -> float:
    """Top-1 accuracy of graph's first output against labels y (class ids, or one-hot rows)."""
    run = runner(graph, backend)
    preds = np.concatenate([run([a[i:i + batch_size] for a in x])[0] for i in range(0, len(x[0]), batch_size)])
    return float(np.mean(predicted_class(preds) == true_class(y, len(preds))))


def predicted_class(out: np.ndarray) -> np.ndarray:
    out = out.reshape(len(out), -1)
    return (out[:, 0] > 0.5).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)


def true_class(y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != n:
        raise CalibrationError(f"validation labels: {len(y)} labels for {n} validation samples")
    return y.reshape(n, -1).argmax(axis=1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(n).astype(np.int64)


def choose_float_layers(graph: Graph, ranges: dict, validation_data, max_drop: float, per_channel: bool = True,
                        backend: str = "native") -> dict:
    """Which layers stay float so that accuracy(int8) >= accuracy(float) - max_drop; a report dict."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise CalibrationError("validation_data must be a pair (x, y)")
    if max_drop is None or not np.isfinite(max_drop) or max_drop < 0:
        raise CalibrationError(f"max_accuracy_drop must be a number >= 0 (a fraction, 0.003 = 0.3 points), "
                               f"got {max_drop!r}")
    x = check_calibration_data(graph, validation_data[0], "validation data")
    y = validation_data[1]

    def acc(float_layers):
        return accuracy(quantize_int8(graph, ranges, float_layers, per_channel), x, y, backend)

    layers = [g.layer for g in find_groups(graph)]
    base = accuracy(graph, x, y, backend)
    sensitivity = {name: base - acc([o for o in layers if o != name]) for name in layers}
    kept, current = [], acc([])
    report = {"float_accuracy": base, "int8_accuracy": current, "sensitivity": sensitivity}
    for name in sorted(layers, key=lambda n: -sensitivity[n]):
        if base - current <= max_drop:
            break
        kept.append(name)
        current = acc(kept)
    report.update(kept_float=kept, final_accuracy=current, met=base - current <= max_drop)
    return report
