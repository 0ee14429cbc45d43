"""VJPs of the reductions: sum and mean broadcast back; max/min split among tied extremes."""
from __future__ import annotations

from . import defvjp
from ._emit import as_float_mask, broadcast_like, element_count, keepdims_shape, norm_axes, reshape_to


def _spread(b, node, g):
    """g with the reduced axes put back as size 1, ready to broadcast against the input (with a dynamic
    length T, which a reshape's shape attribute cannot name: expand_dims, or leading axes left off)."""
    x = node.inputs[0]
    axes = norm_axes(node.attrs["axes"], x.type.rank)
    kept = keepdims_shape(x.shape, axes)
    if not x.type.dynamic_dims or g.shape == kept:
        return reshape_to(b, g, x.type.with_shape(kept)), axes
    if axes == tuple(range(len(axes))):   # leading axes: g broadcasts right-aligned as it is
        return g, axes
    if 0 in axes:
        raise NotImplementedError(f"{node.where()}: the gradient of a reduction over the batch and inner axes "
                                  f"{list(axes)} of {x.type} (a dynamic length T) is not supported")
    return b.expand_dims(g, axes=list(axes)), axes


@defvjp("reduce_sum")
def _sum(b, node, g):
    gk, _ = _spread(b, node, g)
    return [broadcast_like(b, gk, node.inputs[0])]


@defvjp("reduce_mean")
def _mean(b, node, g):
    x = node.inputs[0]
    gk, axes = _spread(b, node, g)
    return [broadcast_like(b, b.div(gk, element_count(b, x, axes)), x)]


@defvjp("reduce_max", "reduce_min")
def _extreme(b, node, g):
    """Equal split: each of k tied extremes gets g / k (JAX's convention)."""
    x = node.inputs[0]
    gk, axes = _spread(b, node, g)
    yk = reshape_to(b, node.outputs[0], gk.type)
    mask = as_float_mask(b, b.equal(x, yk), x)
    count = b.reduce_sum(mask, axes=axes, keepdims=True)
    return [b.mul(mask, b.div(gk, count))]
