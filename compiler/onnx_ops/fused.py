"""fused: exported inlined, each region node through its own emitter (ONNX runtimes fuse for themselves)."""
from __future__ import annotations

from . import EMITTERS, UNSUPPORTED, onnx_op
from .context import UnsupportedOpError


@onnx_op("fused")
def _fused(ctx, node, ins, outs):
    body = node.attrs["body"]
    names = dict(zip(body.inputs, ins))
    outer = ctx.label
    for k, inner in enumerate(body.nodes):
        if inner.op not in EMITTERS:
            why = UNSUPPORTED.get(inner.op, "it has no ONNX mapping")
            raise UnsupportedOpError(f"{node.where()}: region node {inner.op} cannot be exported to ONNX: {why}")
        ctx.set_label(f"{outer}/{inner.op}{k}")
        inner_outs = [outs[0] if v is body.outputs[0] else ctx.fresh(f"{outer}/{inner.op}{k}") for v in inner.outputs]
        names.update(zip(inner.outputs, inner_outs))
        EMITTERS[inner.op](ctx, inner, [names[v] for v in inner.inputs], inner_outs)
    ctx.set_label(outer)
