"""Fused elementwise loops: a group of elementwise nodes becomes one loop with no temporaries.

Broadcasting is an index mapping: every leaf is read at the group output's index (right-aligned,
stride 0 along broadcast axes). Adjacent axes with the same broadcast pattern are coalesced, so
the common cases are one flat loop; the innermost loop runs in explicit vectors plus a scalar tail.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import bool_

from ..loops import I8, const, i64, load, loop_nest, splat, store, vec_type, vector_range
from . import lowering
from .context import Buffer
from .elementwise_math import ELEMENTWISE_OPS, emit_node, scalar_constant


def coalesce(out_shape, leaf_shapes):
    """Group the output axes: returns [(axes, full_flags_per_leaf)], size-1 axes dropped."""
    rank = len(out_shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in leaf_shapes]
    runs = []
    for ax, d in enumerate(out_shape):
        if d == 1:
            continue
        flags = tuple(s[ax] == d for s in padded)  # else the leaf has 1 here: broadcast
        if runs and runs[-1][1] == flags:
            runs[-1][0].append(ax)
        else:
            runs.append(([ax], flags))
    return runs


def _run_sizes(builder, out: Buffer, runs):
    sizes = []
    for axes, _ in runs:
        n = out.dims[axes[0]]
        for ax in axes[1:]:
            n = builder.mul(n, out.dims[ax])
        sizes.append(n)
    return sizes or [i64(1)]


def _strides(builder, sizes, full):
    """Element strides of one operand over the coalesced axes (0 where it broadcasts)."""
    out, s = [], i64(1)
    for size, f in zip(reversed(sizes), reversed(full)):
        out.append(s if f else i64(0))
        if f:
            s = builder.mul(s, size)
    return out[::-1]


def emit_fused(builder, target, out: Buffer, members, leaves: dict):
    """out = the value of out.value, computed from `leaves` (Value -> Buffer) through `members`."""
    leaf_list = list(leaves)
    runs = coalesce(out.shape, [v.type.shape for v in leaf_list])
    sizes = _run_sizes(builder, out, runs)
    flags = [f for _, f in runs] or [tuple(False for _ in leaf_list)]
    leaf_strides = [_strides(builder, sizes, [f[k] for f in flags]) for k in range(len(leaf_list))]
    out_strides = _strides(builder, sizes, [True] * len(sizes))
    inner_full = flags[-1]
    lanes = target.lanes(_widest(out.value, members, leaf_list))

    with loop_nest(builder, sizes[:-1], name="ew") as idx:
        def base(buf, strides):
            off = i64(0)
            for i, s in zip(idx, strides):
                off = builder.add(off, builder.mul(i, s))
            return buf.at(builder, off)

        out_base = base(out, out_strides)
        leaf_bases = [base(leaves[v], s) for v, s in zip(leaf_list, leaf_strides)]

        def body(i, width):
            memo = {}
            for k, v in enumerate(leaf_list):
                memo[v] = _load(builder, leaf_bases[k], i, width, inner_full[k], v.type.dtype)
            result = _evaluate(builder, out.value, memo, width)
            _store(builder, result, builder.gep(out_base, [i]), out.dtype)

        vector_range(builder, sizes[-1], lanes, body, name="ew.in")


def _evaluate(builder, value, memo, width):
    if value in memo:
        return memo[value]
    node = value.producer
    if node.op == "constant":
        result = scalar_constant(node, width)
    elif node.op in ELEMENTWISE_OPS:
        result = emit_node(builder, node, [_evaluate(builder, v, memo, width) for v in node.inputs])
    else:
        raise ValueError(f"{node.where()} is not elementwise but was fused into an elementwise loop")
    memo[value] = result
    return result


def _load(builder, base, i, width, full, dtype):
    v = load(builder, builder.gep(base, [i]), width) if full else splat(builder, builder.load(base), width)
    return builder.icmp_unsigned("!=", v, const(v.type, 0)) if dtype == bool_ else v


def _store(builder, value, ptr, dtype):
    if dtype == bool_:
        width = value.type.count if isinstance(value.type, ir.VectorType) else 1
        value = builder.zext(value, vec_type(I8, width))
    store(builder, value, ptr)


def _widest(out_value, members, leaves) -> int:
    sizes = [out_value.type.dtype.itemsize] + [v.type.dtype.itemsize for v in leaves]
    sizes += [n.outputs[0].type.dtype.itemsize for n in members]
    return max(4, *sizes)


@lowering(*ELEMENTWISE_OPS)
def lower_elementwise(ctx):
    """A single elementwise node (fused groups come straight from codegen through emit_fused)."""
    emit_fused(ctx.builder, ctx.target, ctx.outs[0], [ctx.node], dict(zip(ctx.node.inputs, ctx.ins)))
