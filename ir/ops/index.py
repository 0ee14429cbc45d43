"""Indexing ops: gather (embeddings), scatter_add (its gradient), one_hot (sparse labels)."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..registry import Attr, defop
from ..types import TensorType
from ._util import fmt_shape, norm_axis, require


def _index_type(t: TensorType, what: str):
    require(t.dtype.is_int, f"{what} must be an integer tensor, got {t}")


def _check_range(idx, size, what):
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ShapeError(f"{what}: index out of range [0, {size}): min {idx.min()}, max {idx.max()}")


def _gather_infer(ts, attrs):
    data, idx = ts
    _index_type(idx, "gather indices")
    ax = norm_axis(attrs["axis"], data.rank)
    require(not isinstance(data.shape[ax], str), f"gather along the batch axis of {data} is not static")
    require(not (idx.has_batch and data.has_batch), f"gather of batched data {data} with batched indices {idx}")
    require(not idx.has_batch or ax == 0, f"batched indices {idx} need gather axis 0")
    return [data.with_shape(data.shape[:ax] + idx.shape + data.shape[ax + 1:])]


def _gather_ref(xs, attrs, batch):
    data, idx = xs
    ax = attrs["axis"] % data.ndim
    _check_range(idx, data.shape[ax], "gather")
    return [np.take(data, idx, axis=ax)]


defop("gather", ("data", "indices"), _gather_infer, _gather_ref, attrs={"axis": Attr("int", 0)},
      doc="take slices of data along axis at integer indices (out of range is an error)")


def _scatter_infer(ts, attrs):
    idx, upd = ts
    _index_type(idx, "scatter_add indices")
    shape = attrs["shape"]
    ax = norm_axis(attrs["axis"], len(shape))
    require(not any(isinstance(d, str) for d in shape) or (ax != 0 and not idx.has_batch),
            f"scatter_add into batched shape {fmt_shape(shape)} needs axis != 0 and unbatched indices, got {idx}")
    expect = tuple(shape[:ax]) + idx.shape + tuple(shape[ax + 1:])
    require(upd.shape == expect, f"scatter_add updates {upd} must have shape {fmt_shape(expect)} "
                                 f"for indices {idx} into {fmt_shape(shape)}")
    return [TensorType(shape, upd.dtype)]


def _scatter_ref(xs, attrs, batch):
    idx, upd = xs
    shape = tuple(upd.shape[0] if isinstance(d, str) else d for d in attrs["shape"])  # batch = updates' (axis != 0)
    ax = attrs["axis"] % len(shape)
    _check_range(idx, shape[ax], "scatter_add")
    out = np.zeros(shape, upd.dtype)
    moved = np.moveaxis(out, ax, 0)
    upd_m = np.moveaxis(upd.reshape(shape[:ax] + (idx.size,) + tuple(shape[ax + 1:])), ax, 0)
    np.add.at(moved, idx.reshape(-1), upd_m)
    return [out]


defop("scatter_add", ("indices", "updates"), _scatter_infer, _scatter_ref,
      attrs={"shape": Attr("shape"), "axis": Attr("int", 0)},
      doc="zeros(shape) with updates summed in at indices along axis: the gradient of gather")


def _one_hot_infer(ts, attrs):
    _index_type(ts[0], "one_hot indices")
    require(attrs["depth"] > 0, f"one_hot depth must be positive, got {attrs['depth']}")
    return [TensorType(ts[0].shape + (attrs["depth"],), attrs["dtype"])]


def _one_hot_ref(xs, attrs, batch):
    idx, depth = xs[0], attrs["depth"]
    out = (idx[..., None] == np.arange(depth)).astype(attrs["dtype"].np)
    return [out]  # out-of-range indices give an all-zero row, as in Keras/TF


defop("one_hot", ("indices",), _one_hot_infer, _one_hot_ref,
      attrs={"depth": Attr("int"), "dtype": Attr("dtype", "f32")}, differentiable=False,
      doc="one-hot rows of length depth; out-of-range indices give zeros")
