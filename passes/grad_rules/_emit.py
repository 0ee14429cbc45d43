"""Small IR-emitting helpers shared by the gradient rules (constants, zeros, unbroadcasting)."""
from __future__ import annotations

import numpy as np

from kcompile.ir import BATCH, GraphBuilder, TensorType, Value


def const(b: GraphBuilder, value, like: Value) -> Value:
    """A scalar constant of `like`'s dtype (broadcasts against anything)."""
    return b.constant(np.asarray(value, like.dtype.np), dtype=like.dtype)


def zeros(b: GraphBuilder, t: TensorType, like: Value | None = None) -> Value:
    """Zeros of type t as a splat of a scalar constant (no large literal in the graph); shaped by
    `like` (a value of type t) where t has a dynamic length T, which no shape attribute can name."""
    if like is not None and t.dynamic_dims:
        return zeros_like(b, like)
    z = b.constant(np.zeros((), t.dtype.np), dtype=t.dtype)
    return z if t.shape == () else b.broadcast_to(z, shape=t.shape)


def zeros_like(b: GraphBuilder, x: Value) -> Value:
    """Zeros shaped by x at run time: x < x is false for every x (NaN and infinities too)."""
    return b.cast(b.less(x, x), dtype=x.dtype)


def broadcast_like(b: GraphBuilder, g: Value, like: Value) -> Value:
    """g broadcast to like's shape; through an add of zeros when that shape has a dynamic length T."""
    if g.shape == like.shape:
        return g
    return b.add(g, zeros_like(b, like)) if like.type.dynamic_dims else b.broadcast_to(g, shape=like.shape)


def reshape_to(b: GraphBuilder, x: Value, t: TensorType) -> Value:
    return x if x.shape == t.shape else b.reshape(x, shape=t.shape)


def unbroadcast(b: GraphBuilder, g: Value, t: TensorType) -> Value:
    """Sum g (of a broadcast result's shape) down to shape t: the transpose of broadcasting."""
    lead = g.type.rank - t.rank
    if t.dynamic_dims:   # no reshape (its shape attribute cannot name T): keep the size-1 axes instead
        g = b.reduce_sum(g, axes=list(range(lead))) if lead else g
        inner = [i for i, d in enumerate(t.shape) if d == 1 and g.shape[i] != 1]
        return b.reduce_sum(g, axes=inner, keepdims=True) if inner else g
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
    """How many elements of x a reduction over `axes` combines, as a scalar of x's dtype (over a
    dynamic length T: counted at run time, shaped like a keepdims reduction of x)."""
    if any(a and isinstance(x.shape[a], str) for a in axes):
        return b.reduce_sum(b.add(zeros_like(b, x), const(b, 1, x)), axes=tuple(axes), keepdims=True)
    static = int(np.prod([x.shape[a] for a in axes if isinstance(x.shape[a], int)]))
    count = const(b, static, x)
    for a in axes:
        if isinstance(x.shape[a], str):
            count = b.mul(count, batch_size(b, x, x.shape[a]))
    return count


def as_float_mask(b: GraphBuilder, cond: Value, like: Value) -> Value:
    return b.cast(cond, dtype=like.dtype)
