"""Pass "scan-constant-transposes": a scan constant its body reads as a transposed matmul operand is
transposed once, before the scan, instead of at every step.

An RNN's backward step (the scan VJP) computes dh = dz @ W^T with the recurrent kernel W a scan constant:
matmul(dz, W) {transpose_b}. B's columns are then strided, so the GEMM gathers W^T into packed panels at
every one of the T steps (LSTM 64 units: 16K gathered elements a step). The scan now also takes
transpose(W) as a constant, and those matmuls read it with transpose_b cleared: B's rows are contiguous
and the small-M GEMM reads them in place. Other uses of W keep W.
"""
from __future__ import annotations

from kcompile.ir import Graph, GraphBuilder

from .canonicalize import dce
from .manager import register_pass
from .rewrite import Rule, rewrite_graph


@register_pass("scan-constant-transposes")
def scan_constant_transposes(graph: Graph) -> Graph:
    """Scans whose body reads a 2-D constant as matmul's transposed B also take it transposed, once."""
    return dce(rewrite_graph(graph, [Rule(("scan",), _hoisted)]))


def _transposed_b(node, v) -> bool:
    return node.op == "matmul" and node.inputs[1] is v and node.inputs[0] is not v and node.attrs["transpose_b"]


def _hoisted(rw, m):
    body = dce(m.attrs["body"])
    first = m.attrs["num_carries"] + m.attrs["num_xs"]
    consts = [v for v in body.inputs[first:] if v.type.rank == 2]
    flip = [v for v in consts if any(_transposed_b(n, v) for n in body.nodes)]
    if not flip:
        return None
    index = {v: i for i, v in enumerate(body.inputs)}
    extra = [rw.new(m, "transpose", m.inputs[index[v]], perm=[1, 0]) for v in flip]
    return rw.new(m, "scan", *m.inputs, *extra, **{**m.attrs, "body": _with_transposed(body, flip)})


def _with_transposed(body: Graph, flip: list) -> Graph:
    """body taking one more input per value of `flip` (its transpose), read by the transposed-B matmuls."""
    b = GraphBuilder(body.name)
    b.meta.update(body.meta)
    env = {v: b.input(v.name, v.type) for v in body.inputs}
    transposed = {v: b.input(f"{v.name}_t", v.type.with_shape(v.type.shape[::-1])) for v in flip}
    for node in body.nodes:
        ins, attrs = [env[v] for v in node.inputs], dict(node.attrs)
        if node.op == "matmul" and _transposed_b(node, node.inputs[1]) and node.inputs[1] in transposed:
            ins[1], attrs["transpose_b"] = transposed[node.inputs[1]], False
        outs = b.op(node.op, *ins, name=node.name, **attrs)
        env.update(zip(node.outputs, outs if isinstance(outs, tuple) else (outs,)))
    return b.build([env[v] for v in body.outputs], list(body.output_names))
