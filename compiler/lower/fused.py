"""The fused node's lowering: its region as one kernel, as the fuse pass decided (ir/ops/fused.py).

loop      one elementwise loop over the output (lower/elementwise.py emit_fused)
prologue  the reduction's own loop, reading the elementwise nodes inline (Buffer.prologue)
epilogue  the anchor's lowering, handed an Epilogue: the kernel applies the first `in_kernel`
          nodes (bias add, activation) in registers, the rest run in place on the output after it
attention softmax(Q K^T) V per head, Q, K, V read in place (lower/attention.py)
"""
from __future__ import annotations

from kcompile.ir import Value
from kcompile.ir.ops.fused import computing_nodes

from . import get_lowering, lowering, run_time_extents
from .attention import lower_attention
from .context import Buffer, LowerCtx
from .elementwise import emit_fused


class Epilogue:
    """What a fused node tells its anchor's lowering; a lowering that applies the kernel part
    calls ctx.take_epilogue() and reads `bias` (a Buffer or None), `activation` and `in_kernel`.

    out: the Buffer both write; anchor_value: the anchor's output Value (read in place);
    members: the elementwise nodes after the anchor; leaves: region inputs -> Buffers.
    """

    def __init__(self, target, out: Buffer, anchor_value: Value, members, leaves: dict, attrs: dict, body):
        self.target, self.out, self.anchor_value = target, out, anchor_value
        self.members, self.leaves = list(members), dict(leaves)
        self.in_kernel, self.activation = attrs["in_kernel"], attrs["activation"]
        self.pool = attrs.get("pool", 0)   # k of a last k x k max pool the kernel applies (ir/ops/fused.py)
        self.bias = leaves[body.inputs[attrs["bias"]]] if attrs["bias"] >= 0 else None

    def emit_in_place(self, builder, nthreads=None, claimed: int = 0) -> None:
        """A loop over out for the members after the first `claimed` (the kernel applied those)."""
        rest = self.members[claimed:]
        if not rest:
            return
        current = self.members[claimed - 1].outputs[0] if claimed else self.anchor_value
        produced = {v for n in rest for v in n.outputs}
        leaves = {}
        for v in (v for n in rest for v in n.inputs if v not in produced):
            if v is current:
                leaves[v] = self.out.view(current, self.out.dims)
            elif v in self.leaves:
                leaves[v] = self.leaves[v]
        emit_fused(builder, self.target, self.out, rest, leaves, nthreads)


def _dims(ctx, v: Value) -> list:
    return [ctx.size_of(d, axis) for axis, d in enumerate(v.type.shape)]


def _lower_inner(ctx, node, ins, out: Buffer, epilogue=None) -> LowerCtx:
    """Lower one region node with the fused node's context; its output goes to `out`."""
    inner = LowerCtx(ctx.builder, ctx.module, node, ins, [out], ctx.batch, ctx.nthreads, ctx.target, ctx.status,
                     epilogue, ctx.libraries, sizes=ctx.sizes, params=ctx.params)
    get_lowering(node.op)(inner)
    ctx.builder = inner.builder
    return inner


run_time_extents("fused")   # its region's nodes are checked one by one (compiler/dynamic_dims.py)


@lowering("fused")
def lower_fused(ctx):
    body, kind = ctx.attrs["body"], ctx.attrs["kind"]
    leaves = {v: buf for v, buf in zip(body.inputs, ctx.ins)}
    result = body.outputs[0]
    out = ctx.outs[0].view(result, ctx.outs[0].dims)
    nodes = computing_nodes(body)
    if kind == "loop":
        emit_fused(ctx.builder, ctx.target, out, nodes, leaves, ctx.nthreads)
    elif kind == "prologue":
        reduction = nodes[-1]
        x = reduction.inputs[0]
        source = Buffer(x, None, _dims(ctx, x), prologue=(x, leaves))
        _lower_inner(ctx, reduction, [source], out)
    elif kind == "attention":
        lower_attention(ctx, body, leaves, out)
    else:
        _lower_epilogue(ctx, body, nodes, leaves, out)


def _lower_epilogue(ctx, body, nodes, leaves, out):
    anchor, members = nodes[0], nodes[1:]
    av = anchor.outputs[0]
    if av.type.dtype != body.outputs[0].type.dtype and ctx.attrs["in_kernel"] < len(members):
        raise NotImplementedError(f"{ctx.node.where()}: an epilogue that changes the dtype must run in the kernel")
    epilogue = Epilogue(ctx.target, out, av, members, leaves, ctx.attrs, body)
    inner = _lower_inner(ctx, anchor, [leaves[v] for v in anchor.inputs], out.view(av, out.dims), epilogue)
    epilogue.emit_in_place(ctx.builder, ctx.nthreads, epilogue.in_kernel if inner.epilogue_taken else 0)
