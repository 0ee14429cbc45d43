"""Metrics vs hand-computed NumPy: accumulation over batches, sample weights, reset, lookup by name."""
import numpy as np
import pytest

from kcompile.frontend import metrics

rng = np.random.default_rng(2)
PROBS = rng.random((8, 3)).astype(np.float32)
LABELS = np.array([0, 1, 2, 2, 1, 0, 0, 1])
ONEHOT = np.eye(3, dtype=np.float32)[LABELS]
SW = np.array([1, 0, 2, 1, 1, 0.5, 1, 1], np.float32)


def test_accuracies_accumulate_over_batches():
    hits = (PROBS.argmax(-1) == LABELS).astype(np.float32)
    for m, y in ((metrics.SparseCategoricalAccuracy(), LABELS), (metrics.CategoricalAccuracy(), ONEHOT)):
        m.update_state(y[:5], PROBS[:5])
        m.update_state(y[5:], PROBS[5:])
        assert np.isclose(m.result(), hits.mean())
        m.reset_state()
        m.update_state(y, PROBS, sample_weight=SW)
        assert np.isclose(m.result(), (hits * SW).sum() / SW.sum())
    b = metrics.BinaryAccuracy()
    b.update_state(ONEHOT[:, :1], PROBS[:, :1])
    assert np.isclose(b.result(), ((PROBS[:, 0] > 0.5) == ONEHOT[:, 0]).mean())


def test_regression_metrics_and_mean():
    mae, mse = metrics.get("mae"), metrics.MeanSquaredError()
    assert mae.name == "mae" and mse.name == "mean_squared_error"
    mae.update_state(ONEHOT, PROBS)
    mse.update_state(ONEHOT, PROBS)
    assert np.isclose(mae.result(), np.abs(ONEHOT - PROBS).mean())
    assert np.isclose(mse.result(), np.square(ONEHOT - PROBS).mean())
    mean = metrics.Mean()
    mean.update_state([1.0, 2.0, 3.0])
    mean.update_state([10.0], sample_weight=[2.0])
    assert np.isclose(mean.result(), 26.0 / 5.0)
    assert np.isclose(mean([0.0]), 26.0 / 6.0)


def test_precision_recall_auc():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0], np.float32)
    p = np.array([0.9, 0.6, 0.4, 0.8, 0.1, 0.3, 0.7, 0.55], np.float32)
    pred = p > 0.5
    tp, fp, fn = (pred & (y == 1)).sum(), (pred & (y == 0)).sum(), (~pred & (y == 1)).sum()
    prec, rec = metrics.Precision(), metrics.Recall()
    prec.update_state(y, p)
    rec.update_state(y, p)
    assert np.isclose(prec.result(), tp / (tp + fp)) and np.isclose(rec.result(), tp / (tp + fn))
    auc = metrics.AUC(num_thresholds=1000)
    auc.update_state(y, p)
    pos, neg = p[y == 1], p[y == 0]
    exact = np.mean([(a > b) + 0.5 * (a == b) for a in pos for b in neg])
    assert abs(auc.result() - exact) < 5e-3
    auc.reset_state()
    assert auc.result() == 0.0


class CountPositives(metrics.Metric):
    """A custom metric in the book's style, using kc.ops on eager tensors."""

    def __init__(self, name="count_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        from kcompile.frontend import ops
        self.count.assign_add(ops.sum(ops.cast(ops.greater(y_pred, 0.5), "float32")).numpy())

    def result(self):
        return self.count.numpy()


def test_custom_metric_subclass():
    m = CountPositives()
    m.update_state(ONEHOT, PROBS)
    assert m.result() == (PROBS > 0.5).sum()
    m.reset_state()
    assert m.result() == 0
    assert metrics.get("CountPositives").name == "count_positives"


def test_unknown_metric_is_a_clear_error():
    with pytest.raises(ValueError, match="Could not interpret metric"):
        metrics.get("accuracy_of_vibes")
