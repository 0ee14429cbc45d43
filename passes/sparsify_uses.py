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

CONV_OPS = ("conv1d", "conv2d", "conv2d_integer")
INT8_OPS = ("matmul_integer", "conv2d_integer")


def float_use(node, pos: int) -> bool:
    """The right operand of an untransposed float matmul."""
    return node.op == "matmul" and pos == 1 and node.inputs[1].type.rank == 2 and not node.attrs["transpose_a"] \
        and not node.attrs["transpose_b"]


def int8_use(graph, node, pos: int) -> bool:
    """The weight of a matmul_integer or (ungrouped) conv2d_integer whose weight zero point is 0 at
    compile time (a convolution's input zero point too: its patches pad with it)."""
    w = node.inputs[1].type if len(node.inputs) > 1 else None
    if node.op not in INT8_OPS or pos != 1 or w.dtype.name != "i8" or node.attrs.get("groups", 1) != 1 \
            or not int8_fits(int(np.prod(w.shape[:-1])), w.shape[-1]):
        return False
    try:
        return not np.any(static_value(node.inputs[3], graph.param_values)) and \
            (node.op == "matmul_integer" or static_value(node.inputs[2], graph.param_values) is not None)
    except (ValueError, KeyError):  # a zero point from a graph input or a parameter without a value
        return False


def conv_use(node, pos: int) -> bool:
    """The kernel of an ungrouped conv1d/conv2d without causal padding."""
    return node.op in CONV_OPS and pos == 1 and node.attrs["groups"] == 1 and node.attrs["padding"] != "causal"


def matrix_view(w):
    """A kernel as the [K, COUT] matrix its convolution multiplies patches by (a matrix as it is)."""
    return w.reshape(-1, w.shape[-1])


def emit_patches(b, node, x, graph):
    """patches(x) with the convolution `node`'s geometry (an int8 one pads with its input zero point)."""
    a = node.attrs
    spatial = node.inputs[1].type.shape[:-2]
    tup = (lambda v: (v,)) if node.op == "conv1d" else tuple
    pad = int(static_value(node.inputs[2], graph.param_values)) if node.op == "conv2d_integer" else 0
    return b.op("patches", x, name=node.name, kernel=tuple(spatial), strides=tup(a["strides"]),
                dilations=tup(a["dilations"]), padding=a["padding"], pad_value=pad)
