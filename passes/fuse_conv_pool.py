"""Pass "fuse-conv-pool": a k x k max pool after a float conv2d's bias (+ relu) kernel joins its fused node.

After "fuse", a float conv2d with its bias add (+ relu) is one fused epilogue node whose kernel applies
the whole epilogue. A 'valid' k x k, stride k max_pool2d (k <= 3) that alone reads it is taken into the
node (attr pool=k, ir/ops/fused.py): the kernel computes the conv rows of each pool window together,
takes their max after the bias (+ relu) and writes only the pooled output, so neither the conv's
full output nor a pool pass over it touches memory (compiler/kernels/conv_pool.py). The rows and
columns a 'valid' pool drops (a 13 x 13 conv output under a 2 x 2 pool) are never computed.

This is exact: max commutes with adding a per-channel bias and with relu, and each conv value is
summed as the unfused kernel sums it (bitwise equal while K fits the f32 GEMM's one K block). Left alone: same-padded pools, strides other than
the pool size, pools over 3 x 3, grouped convolutions, a conv output with other readers (a training
graph's backward pass reading the activation) and graph outputs. ONNX export sees the body: conv + pool.
"""
from __future__ import annotations

from kcompile.ir import Graph, Node
from kcompile.ir.ops.fused import computing_nodes, fused_pool

from .fuse_int8_pool import MAX_POOL, with_pools
from .manager import register_pass

FLOATS = ("f32",)        # the float GEMM and direct conv kernels' pooled forms (kernels/conv_pool.py)


@register_pass("fuse-conv-pool")
def fuse_conv_pool(graph: Graph) -> Graph:
    """The graph with each fusible (float conv2d epilogue, max pool) pair as one pooled fused node."""
    return with_pools(graph, _fusible)


def _fusible(node: Node, pool: Node) -> bool:
    """A float conv2d whose kernel applies its whole epilogue (bias and/or relu), and a k x k, stride k,
    'valid' max pool (k <= MAX_POOL) of its output, whose spatial dims are static."""
    a = node.attrs
    if a["kind"] != "epilogue" or a["pool"] or a["activation"] not in ("linear", "relu") or pool.op != "max_pool2d":
        return False
    k = pool.attrs["pool_size"][0]
    anchor, *members = computing_nodes(a["body"])
    shape = node.outputs[0].type.shape
    return (anchor.op == "conv2d" and anchor.attrs["groups"] == 1 and node.outputs[0].type.dtype.name in FLOATS
            and a["in_kernel"] == len(members) >= 1 and fused_pool(pool, k) and k <= MAX_POOL
            and all(isinstance(d, int) and d >= k for d in shape[1:3]))
