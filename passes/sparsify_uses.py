"""Which uses of a kernel the sparsify pass can make sparse, and the im2col form of a convolution's.

conv1d/conv2d(x, W) == patches(x) @ W.reshape(K, COUT): a convolution kernel (KH, KW, CIN, COUT) or
(KW, CIN, COUT) is weighed as the [KH*KW*CIN, COUT] matrix of its im2col form (ir/ops/patches.py), with one row per output position; the sparse side
also pays for copying the patches (sparse_cost.PATCH_PER_ELEMENT). Grouped convolutions and causal
padding are left dense. A dense conv2d followed by a k x k max pool gets the pool in its kernel
(passes/fuse_conv_pool.py, fuse_int8_pool.py) and skips the positions the pool drops; a sparse one
would not, so fused_pool_size tells the cost model (sparse_cost.Use).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir.ops.fused import fused_pool

from .fuse_int8_pool import MAX_POOL
from .quant_plan import static_value
from .sparse_cost import int8_fits

CONV_OPS = ("conv1d", "conv2d", "conv2d_integer")
INT8_OPS = ("matmul_integer", "conv2d_integer")
POOL_EPILOGUE = ("add", "relu", "requantize")   # what "fuse" keeps in a convolution's kernel before a pool


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


def fused_pool_size(graph, node) -> int:
    """k where the dense conv2d `node` would take a following max pool into its kernel: its output
    read only by a chain of epilogue ops (bias add, relu; an int8 convolution's requantize, which it
    needs) ending in a k x k, stride k, 'valid' max pool (k <= MAX_POOL) of static spatial dims; else 0.
    What fuse-conv-pool / fuse-int8-pool check after fusion, seen before it (the pass runs first)."""
    shape = node.outputs[0].type.shape
    if node.op not in ("conv2d", "conv2d_integer") or not all(isinstance(d, int) for d in shape[1:3]):
        return 0
    users, outputs = graph.users(), set(graph.outputs)
    v, chain = node.outputs[0], []
    while len(users.get(v, [])) == 1 and v not in outputs:
        reader = users[v][0]
        if reader.op == "max_pool2d":
            k = reader.attrs["pool_size"][0]
            epilogue = "requantize" in chain if node.op == "conv2d_integer" else bool(chain)
            return k if epilogue and fused_pool(reader, k) and k <= MAX_POOL and min(shape[1:3]) >= k else 0
        if reader.op not in POOL_EPILOGUE or reader.inputs[0] is not v:
            return 0
        chain.append(reader.op)
        v = reader.outputs[0]
    return 0
