"""Reductions over axes (empty axes = all), with keepdims; argmax/argmin."""
from __future__ import annotations

import numpy as np

from ..dtypes import i64
from ..registry import Attr, defop
from ..types import TensorType
from ._util import norm_axes, norm_axis, numeric, require

REDUCTIONS = {
    "reduce_sum": np.sum,
    "reduce_mean": np.mean,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
}


def reduced_shape(shape, axes, keepdims):
    return tuple((1 if keepdims else None) if i in axes else d for i, d in enumerate(shape)
                 if keepdims or i not in axes)


def _reduce_infer(name):
    def infer(ts, attrs):
        t = ts[0]
        numeric(t, name)
        axes = norm_axes(attrs["axes"], t.rank) if attrs["axes"] else tuple(range(t.rank))
        if name in ("reduce_max", "reduce_min"):
            require(all(t.shape[a] != 0 for a in axes), f"{name} over an empty axis of {t}")
        return [TensorType(reduced_shape(t.shape, axes, attrs["keepdims"]), t.dtype)]
    return infer


def _reduce_ref(fn):
    def ref(xs, attrs, batch):
        x = xs[0]
        axes = tuple(a % x.ndim for a in attrs["axes"]) if attrs["axes"] else None
        return [np.asarray(fn(x, axis=axes, keepdims=attrs["keepdims"])).astype(x.dtype)]
    return ref


for _name, _fn in REDUCTIONS.items():
    defop(_name, ("x",), _reduce_infer(_name), _reduce_ref(_fn),
          attrs={"axes": Attr("ints", ()), "keepdims": Attr("bool", False)},
          differentiable=_name != "reduce_prod",
          doc=f"{_name} over `axes` (all axes when empty)", traits=("reduction",))


def _arg_infer(ts, attrs):
    t = ts[0]
    numeric(t, "arg reduction")
    ax = norm_axis(attrs["axis"], t.rank)
    require(t.shape[ax] != 0, f"arg reduction over empty axis {ax} of {t}")
    return [TensorType(reduced_shape(t.shape, (ax,), attrs["keepdims"]), i64)]


def _arg_ref(fn):
    def ref(xs, attrs, batch):
        out = fn(xs[0], axis=attrs["axis"] % xs[0].ndim, keepdims=attrs["keepdims"])
        return [np.asarray(out).astype(np.int64)]
    return ref


for _name, _fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    defop(_name, ("x",), _arg_infer, _arg_ref(_fn),
          attrs={"axis": Attr("int", -1), "keepdims": Attr("bool", False)}, differentiable=False,
          doc=f"index (i64) of the first {_name[3:]} along axis")
