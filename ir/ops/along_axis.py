"""Ops that run along one axis: cumsum (running sums, either direction) and top_k (largest k, sorted)."""
from __future__ import annotations

import numpy as np

from ..dtypes import i32
from ..registry import Attr, defop
from ._util import norm_axis, numeric, require


def _cumsum_infer(ts, attrs):
    numeric(ts[0], "cumsum")
    norm_axis(attrs["axis"], ts[0].rank)
    return [ts[0]]


def _cumsum_ref(xs, attrs, batch):
    x, ax = xs[0], attrs["axis"] % xs[0].ndim
    if attrs["reverse"]:
        return [np.flip(np.cumsum(np.flip(x, ax), axis=ax), ax).astype(x.dtype)]
    return [np.cumsum(x, axis=ax).astype(x.dtype)]


defop("cumsum", ("x",), _cumsum_infer, _cumsum_ref,
      attrs={"axis": Attr("int", -1), "reverse": Attr("bool", False)},
      doc="running sum along axis (from the end when reverse); the gradient is the reverse running sum")


def _top_k_infer(ts, attrs):
    t, k = ts[0], attrs["k"]
    numeric(t, "top_k")
    require(t.rank >= 1, f"top_k needs an operand of rank >= 1, got {t}")
    n = t.shape[-1]
    require(isinstance(n, int) and 1 <= k <= n, f"top_k: k={k} must be in [1, {n}] (the last axis of {t})")
    shape = t.shape[:-1] + (k,)
    return [t.with_shape(shape), t.with_shape(shape).with_dtype(i32)]


def top_k_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest along the last axis, largest first; ties keep the lower index first.
    NaN ranks above every number (as JAX, torch and onnxruntime's TopK), NaNs in index order."""
    if x.dtype.kind != "f":
        return np.argsort(-x.astype(np.int64), axis=-1, kind="stable")[..., :k]
    nan = np.isnan(x)
    keys = np.where(nan, -np.inf, -x.astype(np.float64))
    order = np.lexsort((keys, ~nan), axis=-1)       # NaN first, then descending values; stable
    return order[..., :k]


def _top_k_ref(xs, attrs, batch):
    idx = top_k_indices(xs[0], attrs["k"])
    return [np.take_along_axis(xs[0], idx, axis=-1), idx.astype(np.int32)]


defop("top_k", ("x",), _top_k_infer, _top_k_ref, attrs={"k": Attr("int")},
      doc="the k largest entries along the last axis, sorted descending, and their i32 indices "
          "(ties: lower index first, as JAX and ONNX TopK)")
