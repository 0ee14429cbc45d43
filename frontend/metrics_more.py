"""Keras 3's confusion counts (TruePositives ...), F1Score/FBetaScore, MeanIoU and R2Score, in NumPy.

Each follows keras/src/metrics (f_score_metrics, iou_metrics, regression_metrics, confusion_metrics)
term for term: the same thresholds, sample-weight handling, epsilons and averaging.
"""
from __future__ import annotations

import warnings

import numpy as np

from kcompile.frontend import config
from kcompile.frontend.metrics import Metric, _check_thresholds, _confusion_update, _np, _squeeze_or_expand


class _ConfusionCount(Metric):
    """One cell of the confusion matrix per threshold (prediction > threshold is positive)."""
    cell = 0   # index into _confusion_update's (tp, fp, tn, fn)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds, self._scalar = _check_thresholds(thresholds, None, None, type(self).__name__)
        self.accumulator = self.add_variable((len(self.thresholds),), name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.accumulator.assign_add(_confusion_update(y_true, y_pred, self.thresholds, sample_weight)[self.cell])

    def result(self):
        values = self.accumulator.numpy()
        return np.float32(values[0]) if len(self.thresholds) == 1 else values

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    cell = 0


class FalsePositives(_ConfusionCount):
    cell = 1


class TrueNegatives(_ConfusionCount):
    cell = 2


class FalseNegatives(_ConfusionCount):
    cell = 3


class FBetaScore(Metric):
    """F-beta per class (average None), or micro/macro/weighted averaged, from 2-D (batch, classes) inputs."""
    _direction = "up"

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', "
                             f"'weighted'}}. Received: average={average}")
        if not isinstance(beta, float) or beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be a Python float > 0. Received: beta={beta}")
        if threshold is not None and (not isinstance(threshold, float) or not 0.0 < threshold <= 1.0):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float with "
                             f"0 < threshold <= 1. Received: threshold={threshold}")
        self.average, self.beta, self.threshold = average, beta, threshold
        self.axis = None if average == "micro" else 0
        self._counts = None

    def _build(self, y_true, y_pred):
        if y_pred.ndim != 2 or y_true.ndim != 2:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input "
                             f"shapes: y_pred.shape={y_pred.shape} and y_true.shape={y_true.shape}.")
        shape = () if self.average == "micro" else (y_pred.shape[-1],)
        self._counts = {k: self.add_variable(shape, name=k) for k in
                        ("true_positives", "false_positives", "false_negatives", "intermediate_weights")}

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _np(y_true, np.float32), _np(y_pred, np.float32)
        if self._counts is None:
            self._build(y_true, y_pred)
        if self.threshold is None:   # the top class of each row (a row of zeros stays all negative)
            pred = (y_pred >= y_pred.max(axis=-1, keepdims=True)) & (np.abs(y_pred) > 1e-9)
        else:
            pred = y_pred > self.threshold
        pred = pred.astype(np.float32)
        w = None if sample_weight is None else _np(sample_weight, np.float32)[:, None]

        def weighted_sum(v):
            return (v if w is None else v * w).sum(axis=self.axis)

        for name, value in (("true_positives", pred * y_true), ("false_positives", pred * (1 - y_true)),
                            ("false_negatives", (1 - pred) * y_true), ("intermediate_weights", y_true)):
            self._counts[name].assign_add(weighted_sum(value))

    def result(self):
        if self._counts is None:
            return np.float32(0.0)
        eps = np.float32(config.epsilon())
        tp, fp, fn, iw = (self._counts[k].numpy() for k in
                          ("true_positives", "false_positives", "false_negatives", "intermediate_weights"))
        precision, recall = tp / (tp + fp + eps), tp / (tp + fn + eps)
        b2 = np.float32(self.beta ** 2)
        score = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            score = np.sum(score * (iw / (np.sum(iw) + eps)))
        elif self.average is not None:
            score = np.mean(score)
        return np.asarray(score, np.float32) if np.ndim(score) else np.float32(score)

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config_ = super().get_config()
        del config_["beta"]
        return config_


class MeanIoU(Metric):
    """Mean over classes of intersection over union, from a confusion matrix of integer class ids."""
    _direction = "up"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype)
        self.num_classes, self.ignore_class, self.axis = num_classes, ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        self.total_cm = self.add_variable((num_classes, num_classes), name="total_confusion_matrix")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _np(y_true), _np(y_pred)
        if not self.sparse_y_true:
            y_true = np.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = np.argmax(y_pred, axis=self.axis)
        # Keras counts in int32 (its default dtype here): class ids and weights are truncated to integers
        y_true, y_pred = y_true.astype(np.int32).reshape(-1), y_pred.astype(np.int32).reshape(-1)
        w = np.ones_like(y_true) if sample_weight is None else np.broadcast_to(
            _np(sample_weight).astype(np.int32).reshape(-1), y_true.shape)
        n = self.num_classes
        valid = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
        if self.ignore_class is not None:
            valid &= y_true != self.ignore_class
        cm = np.zeros((n, n), np.int64)
        np.add.at(cm, (y_true[valid], y_pred[valid]), w[valid])
        self.total_cm.assign_add(cm.astype(np.float32))

    def result(self):
        cm = self.total_cm.numpy().astype(np.float32)
        tp = np.diag(cm)
        denominator = cm.sum(axis=0) + cm.sum(axis=1) - tp
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + np.float32(config.epsilon())), 0.0)
        return np.float32(iou.sum() / (valid.sum() + np.float32(config.epsilon())))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class R2Score(Metric):
    """Coefficient of determination per output column, averaged as class_aggregation says (Keras 3)."""
    _direction = "up"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError("Invalid value for argument `class_aggregation`. Expected one of (None, "
                             f"'uniform_average', 'variance_weighted_average'). Received: "
                             f"class_aggregation={class_aggregation}")
        if num_regressors < 0:
            raise ValueError(f"Invalid value for argument `num_regressors`. Expected a value >= 0. Received: "
                             f"num_regressors={num_regressors}")
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self.num_samples = self.add_variable((), name="num_samples")
        self._sums = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _squeeze_or_expand(_np(y_true, np.float32), _np(y_pred, np.float32))
        if y_pred.ndim != 2 or y_true.ndim != 2:
            raise ValueError("R2Score expects 2D inputs with shape (batch_size, output_dim). Received input shapes: "
                             f"y_pred.shape={y_pred.shape} and y_true.shape={y_true.shape}.")
        if self._sums is None:
            self._sums = {k: self.add_variable((y_pred.shape[-1],), name=k)
                          for k in ("squared_sum", "sum", "residual", "count")}
        w = np.float32(1) if sample_weight is None else _np(sample_weight, np.float32)
        w = np.broadcast_to(w[:, None] if np.ndim(w) == 1 else w, y_true.shape)
        weighted = y_true * w
        self._sums["sum"].assign_add(weighted.sum(axis=0))
        self._sums["squared_sum"].assign_add((y_true * weighted).sum(axis=0))
        self._sums["residual"].assign_add(((y_true - y_pred) ** 2 * w).sum(axis=0))
        self._sums["count"].assign_add(w.sum(axis=0))
        self.num_samples.assign_add(np.float32(y_true.size))

    def result(self):
        if self._sums is None:
            return np.float32(0.0)
        s = {k: v.numpy() for k, v in self._sums.items()}
        mean = s["sum"] / s["count"]
        total = s["squared_sum"] - s["sum"] * mean
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = 1 - s["residual"] / total
        raw = np.where(np.isinf(raw), 0.0, raw).astype(np.float32)
        if self.class_aggregation == "uniform_average":
            score = np.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            score = np.sum(total * raw) / np.sum(total)
        else:
            score = raw
        n = float(self.num_samples.numpy())
        if self.num_regressors != 0:
            if self.num_regressors >= n - 1:
                warnings.warn("Adjusted R2 score: as many or more independent predictors than datapoints; "
                              "falling back to the standard R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - self.num_regressors - 1.0)
        return np.asarray(score, np.float32) if np.ndim(score) else np.float32(score)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
