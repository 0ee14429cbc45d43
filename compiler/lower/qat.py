"""fake_quantize: its elementwise expansion (ir/ops/qat.py `expand`) lowered as one fused loop."""
from __future__ import annotations

import dataclasses

import numpy as np

from kcompile.ir import Node, TensorType, get_op
from kcompile.ir.ops.qat import expand

from . import lowering
from .elementwise import emit_fused


@lowering("fake_quantize")
def lower_fake_quantize(ctx):
    """The same f32 steps as the reference, built as elementwise nodes and fused into one loop."""
    node, members = ctx.node, []

    def emit(op, *args):
        attrs = get_op(op).normalize_attrs({}, op)
        n = Node(op, args, attrs, get_op(op).infer_types([a.type for a in args], attrs, op), node.name)
        members.append(n)
        return n.outputs[0]

    def const(v):
        dt = node.outputs[0].type.dtype
        return Node("constant", (), {"value": np.asarray(v, dt.np)}, [TensorType((), dt)]).outputs[0]

    x, lo, hi = node.inputs
    y, _, _ = expand(emit, const, x, lo, hi, node.attrs["narrow"])
    out = dataclasses.replace(ctx.outs[0], value=y)
    emit_fused(ctx.builder, ctx.target, out, members, dict(zip(node.inputs, ctx.ins)), ctx.nthreads)
