"""Shape helpers shared by the op definitions (broadcasting, axes, symbolic batch)."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..types import BATCH, TensorType


def broadcast_dims(a, b, what: str):
    if a == b:
        return a
    if a == 1:
        return b
    if b == 1:
        return a
    raise ShapeError(f"{what}: dimensions {a} and {b} do not broadcast")


def broadcast_shapes(*shapes) -> tuple:
    """NumPy broadcasting over shapes that may hold the batch symbol."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        d = 1
        for s in shapes:
            j = i - (rank - len(s))
            if j >= 0:
                d = broadcast_dims(d, s[j], f"shapes {' and '.join(_fmt(s) for s in shapes)}")
        out.append(d)
    if any(isinstance(d, str) and d in (BATCH, out[0]) for d in out[1:]):
        raise ShapeError(f"shapes {' and '.join(_fmt(s) for s in shapes)} would move the batch dimension")
    return tuple(out)


def same_dtype(types, op_what: str = "operands"):
    first = types[0].dtype
    for t in types[1:]:
        if t.dtype != first:
            raise ShapeError(f"{op_what} must share one dtype, got {', '.join(str(t) for t in types)}")
    return first


def require(cond: bool, msg: str):
    if not cond:
        raise ShapeError(msg)


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank


def norm_axes(axes, rank: int) -> tuple:
    out = tuple(sorted(norm_axis(a, rank) for a in axes))
    if len(set(out)) != len(out):
        raise ShapeError(f"axes {list(axes)} repeat an axis")
    return out


def concrete(shape, batch):
    """Replace the batch symbol in an attribute shape with the run-time batch size."""
    if any(isinstance(d, str) for d in shape[1:]):
        raise ShapeError(f"shape {_fmt(shape)} holds a symbolic non-batch dimension, which this op cannot "
                         "take in an attribute")
    return tuple(batch if isinstance(d, str) else d for d in shape)


def float_only(t: TensorType, what: str):
    require(t.dtype.is_float, f"{what} needs a floating-point operand, got {t}")


def numeric(t: TensorType, what: str):
    require(t.dtype.is_float or t.dtype.is_int, f"{what} needs a numeric operand, got {t}")


def _fmt(s) -> str:
    return "[" + ",".join(str(d) for d in s) + "]"


fmt_shape = _fmt


def as_dtype(a, t: TensorType):
    return np.asarray(a).astype(t.dtype.np, copy=False)
