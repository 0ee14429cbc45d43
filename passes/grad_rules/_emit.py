"""Small IR-emitting helpers shared by the gradient rules (constants, zeros, unbroadcasting)."""
from __future__ import annotations

import numpy as np

from kcompile.ir import BATCH, GraphBuilder, TensorType, Value


def const(b: GraphBuilder, value, like: Value) -> Value:
    """A scalar constant of `like`'s dtype (broadcasts against anything)."""
    return b.constant(np.asarray(value, like.dtype.np), dtype=like.dtype)


def zeros(b: GraphBuilder, t: TensorType) -> Value:
    """Zeros of type t as a splat of a scalar constant (no large literal in the graph)."""
    z = b.constant(np.zeros((), t.dtype.np), dtype=t.dtype)
    return z if t.shape == () else b.broadcast_to(z, shape=t.shape)


def reshape_to(b: GraphBuilder, x: Value, t: TensorType) -> Value:
    return x if x.shape == t.shape else b.reshape(x, shape=t.shape)


def unbroadcast(b: GraphBuilder, g: Value, t: TensorType) -> Value:
    """Sum g (of a broadcast result's shape) down to shape t: the transpose of broadcasting."""
    lead = g.type.rank - t.rank
    axes = list(range(lead)) + [lead + i for i, d in enumerate(t.shape) if d == 1 and g.shape[lead + i] != 1]
    if axes:
        g = b.reduce_sum(g, axes=axes)
    return reshape_to(b, g, t)


def norm_axes(axes, rank: int) -> tuple:
    """Reduction axes as sorted non-negative ints; empty means all axes."""
    return tuple(sorted(a % rank for a in axes)) if axes else tuple(range(rank))


def keepdims_shape(shape, axes) -> tuple:
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def batch_size(b: GraphBuilder, like: Value, symbol: str = BATCH) -> Value:
    """The run-time batch size as a scalar of like's dtype (the sum of a batch-long splat of ones)."""
    return b.reduce_sum(b.broadcast_to(const(b, 1, like), shape=(symbol,)))


def element_count(b: GraphBuilder, x: Value, axes) -> Value:
    """How many elements of x a reduction over `axes` combines, as a scalar of x's dtype."""
    static = int(np.prod([x.shape[a] for a in axes if isinstance(x.shape[a], int)]))
    count = const(b, static, x)
    for a in axes:
        if isinstance(x.shape[a], str):
            count = b.mul(count, batch_size(b, x, x.shape[a]))
    return count


def as_float_mask(b: GraphBuilder, cond: Value, like: Value) -> Value:
    return b.cast(cond, dtype=like.dtype)
