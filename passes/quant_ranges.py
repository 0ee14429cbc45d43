"""Value ranges for int8 quantization: observers (minmax, percentile, entropy) and range -> scale/zero point.

An observer sees a tensor's values batch by batch and answers a (low, high) range. The histogram
methods follow the references engineers compare against: `percentile` clips |x| at a percentile of
its histogram (onnxruntime's HistogramCalibrater, default 99.999); `entropy` picks the clipping
threshold whose 128-level quantization of the |x| histogram has the least KL divergence from the
clipped reference distribution (TensorRT's entropy calibrator, 2048 bins, as onnxruntime does too).
Both are symmetric in |x|; a tensor never seen below zero (after relu) keeps a low end of 0.
"""
from __future__ import annotations

import numpy as np

METHODS = ("minmax", "percentile", "entropy")
BINS = 2048
QLEVELS = 128          # levels of one sign in int8: the entropy search quantizes |x| to these
I8_MIN, I8_MAX = -128, 127
W_MAX = 127            # weights are symmetric [-127, 127]: no -128, so w and -w both fit


def check_method(method: str):
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of {list(METHODS)}")


class Observer:
    """Collects min/max (first sweep) and, for the histogram methods, a |x| histogram (second sweep)."""

    def __init__(self, method: str = "minmax", percentile: float = 99.999):
        check_method(method)
        self.method, self.percentile = method, percentile
        self.lo, self.hi = np.inf, -np.inf
        self.hist = None

    @property
    def needs_histogram(self) -> bool:
        return self.method != "minmax"

    def observe_minmax(self, a: np.ndarray):
        if a.size:
            self.lo, self.hi = min(self.lo, float(a.min())), max(self.hi, float(a.max()))

    def observe_histogram(self, a: np.ndarray):
        top = max(abs(self.lo), abs(self.hi))
        h, _ = np.histogram(np.abs(a), bins=BINS, range=(0.0, top if top > 0 else 1.0))
        self.hist = h.astype(np.int64) if self.hist is None else self.hist + h

    def range(self) -> tuple:
        if not np.isfinite(self.lo) or not np.isfinite(self.hi):
            raise ValueError("no values were observed")
        if self.method == "minmax" or self.hist is None or self.hist.sum() == 0:
            return self.lo, self.hi
        top = max(abs(self.lo), abs(self.hi))
        t = (percentile_threshold(self.hist, top, self.percentile) if self.method == "percentile"
             else entropy_threshold(self.hist, top))
        return (max(self.lo, -t) if self.lo < 0 else self.lo), min(self.hi, t)


def percentile_threshold(hist: np.ndarray, top: float, percentile: float) -> float:
    """The |x| below which `percentile` percent of the observed values lie (upper edge of that bin)."""
    cdf = np.cumsum(hist) / hist.sum()
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return top * min(idx + 1, len(hist)) / len(hist)


def entropy_threshold(hist: np.ndarray, top: float) -> float:
    """TensorRT's KL calibration: the threshold bin i (>= 128) minimizing KL(P_i || Q_i)."""
    hist = hist.astype(np.float64)
    best_i, best_kl = len(hist), np.inf
    for i in range(QLEVELS, len(hist) + 1):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()               # outliers clipped into the last bin
        q = _quantized_expansion(hist[:i], QLEVELS)
        kl = _kl(p, q)
        if kl < best_kl:
            best_i, best_kl = i, kl
    return top * best_i / len(hist)


def _quantized_expansion(p: np.ndarray, levels: int) -> np.ndarray:
    """Merge p's bins into `levels` groups, then spread each group's mass evenly over its non-empty bins."""
    starts = np.linspace(0, len(p), levels + 1).astype(int)[:-1]   # len(p) >= levels: no empty group
    nonzero = (p > 0).astype(np.float64)
    sums, counts = np.add.reduceat(p, starts), np.add.reduceat(nonzero, starts)
    per_bin = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return np.repeat(per_bin, np.diff(np.append(starts, len(p)))) * nonzero


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of the normalized histograms, q smoothed where it is empty (onnxruntime's smooth_distribution)."""
    p, q = p / max(p.sum(), 1e-30), _smooth(q / max(q.sum(), 1e-30))
    if q is None:
        return np.inf
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _smooth(q: np.ndarray, eps: float = 1e-4):
    zeros = q == 0
    nonzero = q.size - zeros.sum()
    if nonzero == 0 or eps * zeros.sum() / nonzero >= 1:
        return None
    return np.maximum(q + eps * zeros - (eps * zeros.sum() / nonzero) * ~zeros, 1e-30)


# -- ranges -> quantization parameters --------------------------------------------------------
def activation_qparams(lo: float, hi: float) -> tuple:
    """Asymmetric int8 per tensor: (scale f32, zero point i8); the range is widened to hold 0 exactly."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = np.float32((hi - lo) / (I8_MAX - I8_MIN))
    if not np.isfinite(scale) or scale <= 0:
        scale = np.float32(1.0)  # an all-zero tensor: any scale represents it exactly
    zp = int(np.clip(np.rint(I8_MIN - lo / float(scale)), I8_MIN, I8_MAX))
    return scale, np.int8(zp)


def weight_qparams(w: np.ndarray, axis: int | None) -> tuple:
    """Symmetric int8 weights, per output channel along `axis` (or per tensor): (int8 values, f32 scales)."""
    w = np.asarray(w, np.float32)
    if axis is None:
        top = np.abs(w).max(initial=0.0)
    else:
        reduce = tuple(i for i in range(w.ndim) if i != axis % w.ndim)
        top = np.abs(w).max(axis=reduce, initial=0.0)
    scale = (np.asarray(top, np.float32) / np.float32(W_MAX)).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis % w.ndim] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -W_MAX, W_MAX).astype(np.int8)
    return q, scale
