"""Pass "fuse-int8-pool": a k x k max pool after an int8 convolution's requantizing kernel joins its fused node.

After "fuse", an int8 convolution with its bias add and requantize (+ relu) is one fused epilogue node
that writes 8 bits. A 'valid' k x k, stride k max_pool2d that alone reads it is taken into the node
(attr pool=k, ir/ops/fused.py): the kernel computes the conv rows of each pool window together, takes
the max of their i32 sums (after the bias) and requantizes once, so it requantizes and writes k*k times
fewer values and no pool pass reads the convolution's output (compiler/kernels/int8_microkernel.py).

This is exact because requantize (+ relu) never decreases in its input when the multiplier is
positive: requant(max(acc)) == max(requant(acc)). The multiplier must therefore be a constant whose
every value is positive and finite (checked here); otherwise the node is left as it is.
The ONNX export is unchanged: a fused node exports its body (the conv, bias, requantize and pool).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, Node
from kcompile.ir.ops.fused import computing_nodes, fused_pool

from .fusion_outline import remapped
from .manager import register_pass
from .rewrite import constant_value

MAX_POOL = 3   # k*k rows of a window share one register tile: larger windows would spill it


@register_pass("fuse-int8-pool")
def fuse_int8_pool(graph: Graph) -> Graph:
    """The graph with each fusible (int8 conv epilogue, max pool) pair as one pooled fused node."""
    return with_pools(graph, _fusible)


def with_pools(graph: Graph, fusible) -> Graph:
    """The graph with each (fused node, max pool) pair that fusible(node, pool) accepts as one pooled
    fused node; the pool must be the fused node's only reader (fuse-conv-pool shares this)."""
    users, outputs = graph.users(), set(graph.outputs)
    pairs = {}   # fused node -> its pool
    for node in graph.nodes:
        readers = users.get(node.outputs[0], []) if node.op == "fused" else []
        if len(readers) == 1 and node.outputs[0] not in outputs and fusible(node, readers[0]):
            pairs[node] = readers[0]
    if not pairs:
        return graph
    pools = set(pairs.values())
    subst, nodes = {}, []
    for node in graph.nodes:
        if node in pools:
            continue
        if node in pairs:
            new = _with_pool(node, pairs[node], [subst.get(v, v) for v in node.inputs])
            subst[pairs[node].outputs[0]] = new.outputs[0]
        else:
            new = remapped(node, subst)
            subst.update({old: v for old, v in zip(node.outputs, new.outputs) if old is not v})
        nodes.append(new)
    meta = {k: v for k, v in graph.meta.items() if k != "memory"}   # a plan of the old values means nothing now
    return Graph(graph.name, graph.inputs, graph.params, nodes, [subst.get(v, v) for v in graph.outputs],
                 graph.param_values, graph.output_names, meta)


def _fusible(node: Node, pool: Node) -> bool:
    """An int8 conv whose kernel applies its whole epilogue ending in a requantize with a positive
    constant multiplier, and a k x k, stride k, 'valid' max pool of its (static) output."""
    a = node.attrs
    if a["kind"] != "epilogue" or a["activation"] != "requantize" or a["pool"] or pool.op != "max_pool2d":
        return False
    k = pool.attrs["pool_size"][0]
    anchor, *members = computing_nodes(a["body"])
    shape = node.outputs[0].type.shape
    if (anchor.op != "conv2d_integer" or a["in_kernel"] != len(members) or not fused_pool(pool, k) or k > MAX_POOL
            or not all(isinstance(d, int) and d >= k for d in shape[1:3])):
        return False
    mult = members[-1].inputs[1]
    outer = node.inputs[a["body"].inputs.index(mult)] if mult in a["body"].inputs else mult
    value = constant_value(outer)
    return value is not None and bool(np.all(np.isfinite(value)) and np.all(value > 0))


def _with_pool(node: Node, pool: Node, inputs: list) -> Node:
    """The fused node with the pool appended to its body: pool=k, one more member in the kernel."""
    body = node.attrs["body"]
    inner = Node("max_pool2d", [body.outputs[0]], pool.attrs, [pool.outputs[0].type], pool.name)
    new_body = Graph(body.name, body.inputs, body.params, [*body.nodes, inner], [inner.outputs[0]],
                     body.param_values, body.output_names, body.meta)
    attrs = {**node.attrs, "body": new_body, "pool": pool.attrs["pool_size"][0], "in_kernel": node.attrs["in_kernel"] + 1}
    return Node("fused", inputs, attrs, [pool.outputs[0].type], pool.name, [pool.outputs[0].name])
