"""VJPs of cumsum (the running sum the other way) and top_k (each value's cotangent back at its index)."""
from __future__ import annotations

from . import defvjp


@defvjp("cumsum")
def _cumsum(b, node, g):
    return [b.cumsum(g, axis=node.attrs["axis"], reverse=not node.attrs["reverse"])]


@defvjp("top_k")
def _top_k(b, node, g):
    """dx[..., j] = sum_i g[..., i] * (indices[..., i] == j): a one-hot scatter of the values' cotangent."""
    x = node.inputs[0]
    g_values = g[0]  # the indices output carries no gradient
    hits = b.one_hot(node.outputs[1], depth=x.shape[-1], dtype=x.type.dtype)   # [..., k, n]
    return [b.reduce_sum(b.mul(b.expand_dims(g_values, axes=[-1]), hits), axes=[-2])]
