"""Fused elementwise loops: a group of elementwise nodes becomes one loop with no temporaries.

Broadcasting is an index mapping: every leaf is read at the group output's index (right-aligned,
stride 0 along broadcast axes). Adjacent axes with the same broadcast pattern are coalesced, so
the common cases are one flat loop; the innermost loop runs in explicit vectors plus a scalar tail.
Large loops are split into tasks over the outermost axis and run on the thread pool
(compiler/threads.py); small ones run inline on the calling thread.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import bool_, get_op, ops_with

from ..loops import (I8, broadcast_strides, const, for_range, i64, load, loop_nest, offset, product, splat, store,
                     vec_type, vector_range)
from . import lowering, run_time_extents
from .parallel import TASK_ELEMENTS, parallel_for
from .elementwise_math import emit_node, scalar_constant


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


class FusedLoop:
    """The loop nest of one group; emit() can run in the entry function or in a pool worker."""

    def __init__(self, target, out_value, members, leaf_values, runs):
        self.out_value, self.leaves = out_value, list(leaf_values)
        self.flags = [f for _, f in runs] or [tuple(False for _ in self.leaves)]
        self.lanes = target.lanes(_widest(out_value, members, self.leaves))

    def emit(self, b, out_ptr, leaf_ptrs, sizes, lo, hi):
        """Compute rows [lo, hi) of the outermost coalesced axis."""
        all_strides = [broadcast_strides(b, sizes, [f[k] for f in self.flags]) for k in range(len(self.leaves))]
        all_strides.append(broadcast_strides(b, sizes, [True] * len(sizes)))
        ptrs = list(leaf_ptrs) + [out_ptr]
        if len(sizes) == 1:
            self._inner(b, ptrs, lo, hi)
            return
        with for_range(b, hi, start=lo, name="ew.row") as r:
            with loop_nest(b, sizes[1:-1], name="ew") as idx:
                bases = [b.gep(p, [offset(b, (r,) + idx, st[:-1])]) for p, st in zip(ptrs, all_strides)]
                self._inner(b, bases, i64(0), sizes[-1])

    def _inner(self, b, bases, lo, hi):
        inner_full = self.flags[-1]

        def body(i, width):
            memo = {v: load_operand(b, bases[k], i, width, inner_full[k], v.type.dtype)
                    for k, v in enumerate(self.leaves)}
            result = evaluate(b, self.out_value, memo, width)
            _store(b, result, b.gep(bases[-1], [i]), self.out_value.type.dtype)

        vector_range(b, hi, self.lanes, body, name="ew.in", start=lo)


def emit_fused(builder, target, out, members, leaves: dict, nthreads=None):
    """out = the value of out.value, computed from `leaves` (Value -> Buffer) through `members`.

    With nthreads (an i32/i64 value) the rows of the outermost axis are split into pool tasks.
    """
    leaf_list = list(leaves)
    runs = coalesce(out.shape, [v.type.shape for v in leaf_list])
    sizes = [product(builder, [out.dims[a] for a in axes]) for axes, _ in runs] or [i64(1)]
    loop = FusedLoop(target, out.value, members, leaf_list, runs)
    ptrs = [leaves[v].ptr for v in leaf_list]
    if nthreads is None or _statically_small(out):
        loop.emit(builder, out.ptr, ptrs, sizes, i64(0), sizes[0])
        return
    nptr = len(ptrs)

    def rows(b, lo, hi, vals):
        loop.emit(b, vals[0], vals[1:1 + nptr], vals[1 + nptr:], lo, hi)

    parallel_for(builder, "fused", nthreads, sizes[0], product(builder, sizes[1:]), [out.ptr] + ptrs + sizes, rows)


def _statically_small(out) -> bool:
    if not out.value.type.is_static:   # the batch or a dynamic length: sized at run time
        return False
    n = 1
    for d in out.shape:
        n *= d
    return n <= 2 * TASK_ELEMENTS


def evaluate(builder, value, memo, width):
    """The (vector) value of `value`, from the leaf values in memo through elementwise producers."""
    if value in memo:
        return memo[value]
    node = value.producer
    if node.op == "constant":
        result = scalar_constant(node, width)
    elif get_op(node.op).has("elementwise"):
        result = emit_node(builder, node, [evaluate(builder, v, memo, width) for v in node.inputs])
    else:
        raise ValueError(f"{node.where()} is not elementwise but was fused into an elementwise loop")
    memo[value] = result
    return result


def load_operand(builder, base, i, width, full, dtype):
    """base[i .. i+width) when the operand spans the loop axis, else base[0] in every lane."""
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


run_time_extents(*ops_with("elementwise"))   # emit_fused: every extent from Buffer.dims


@lowering(*ops_with("elementwise"))
def lower_elementwise(ctx):
    """A single elementwise node (fused groups come straight from codegen through emit_fused)."""
    emit_fused(ctx.builder, ctx.target, ctx.outs[0], [ctx.node], dict(zip(ctx.node.inputs, ctx.ins)), ctx.nthreads)
