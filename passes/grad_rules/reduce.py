"""VJPs of the reductions: sum and mean broadcast back; max/min split among tied extremes."""
from __future__ import annotations

from . import defvjp
from ._emit import as_float_mask, element_count, keepdims_shape, norm_axes, reshape_to


def _spread(b, node, g):
    """g with the reduced axes put back as size 1, ready to broadcast against the input."""
    x = node.inputs[0]
    axes = norm_axes(node.attrs["axes"], x.type.rank)
    return reshape_to(b, g, x.type.with_shape(keepdims_shape(x.shape, axes))), axes


def _broadcast(b, g, like):
    return g if g.shape == like.shape else b.broadcast_to(g, shape=like.shape)


@defvjp("reduce_sum")
def _sum(b, node, g):
    gk, _ = _spread(b, node, g)
    return [_broadcast(b, gk, node.inputs[0])]


@defvjp("reduce_mean")
def _mean(b, node, g):
    x = node.inputs[0]
    gk, axes = _spread(b, node, g)
    return [_broadcast(b, b.div(gk, element_count(b, x, axes)), x)]


@defvjp("reduce_max", "reduce_min")
def _extreme(b, node, g):
    """Equal split: each of k tied extremes gets g / k (JAX's convention)."""
    x = node.inputs[0]
    gk, axes = _spread(b, node, g)
    yk = reshape_to(b, node.outputs[0], gk.type)
    mask = as_float_mask(b, b.equal(x, yk), x)
    count = b.reduce_sum(mask, axes=axes, keepdims=True)
    return [b.mul(mask, b.div(gk, count))]
