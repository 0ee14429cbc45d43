"""Which uses of a kernel the sparsify pass can make sparse, and the im2col form of a convolution's.

conv1d/conv2d(x, W) == patches(x) @ W.reshape(K, COUT): a convolution kernel (KH, KW, CIN, COUT) or
(KW, CIN, COUT) is weighed as the [KH*KW*CIN, COUT] matrix of its im2col form (ir/ops/patches.py), with one row per output position; the sparse side
also pays for copying the patches (sparse_cost.PATCH_PER_ELEMENT). Grouped convolutions and causal
padding are left dense.
"""
from __future__ import annotations

import numpy as np

from .quant_plan import static_value
from .sparse_cost import int8_fits

CONV_OPS = ("conv1d", "conv2d")


def float_use(node, pos: int) -> bool:
    """The right operand of an untransposed float matmul."""
    return node.op == "matmul" and pos == 1 and node.inputs[1].type.rank == 2 and not node.attrs["transpose_a"] \
        and not node.attrs["transpose_b"]


def int8_use(graph, node, pos: int) -> bool:
    """The weight of a matmul_integer whose weight zero point is 0 at compile time."""
    if node.op != "matmul_integer" or pos != 1 or node.inputs[1].dtype.name != "i8" \
            or not int8_fits(*node.inputs[1].type.shape):
        return False
    try:
        return not np.any(static_value(node.inputs[3], graph.param_values))
    except (ValueError, KeyError):  # a zero point from a graph input or a parameter without a value
        return False


def conv_use(node, pos: int) -> bool:
    """The kernel of an ungrouped conv1d/conv2d without causal padding."""
    return node.op in CONV_OPS and pos == 1 and node.attrs["groups"] == 1 and node.attrs["padding"] != "causal"


def matrix_view(w):
    """A kernel as the [K, COUT] matrix its convolution multiplies patches by (a matrix as it is)."""
    return w.reshape(-1, w.shape[-1])


def emit_patches(b, node, x):
    """patches(x) with the convolution `node`'s geometry."""
    a = node.attrs
    spatial = node.inputs[1].type.shape[:-2]
    tup = (lambda v: (v,)) if node.op == "conv1d" else tuple
    return b.op("patches", x, name=node.name, kernel=tuple(spatial), strides=tup(a["strides"]),
                dilations=tup(a["dilations"]), padding=a["padding"])
