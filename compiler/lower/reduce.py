"""Reductions (sum/mean/max/min/prod over axes) and argmax/argmin.

Input axes are coalesced into alternating kept/reduced runs. When the innermost run is reduced,
it is summed in a vector accumulator (then folded across lanes); when it is kept, the output row
is updated in place with vector loads/stores. Either way memory is read once, contiguously.
"""
from __future__ import annotations

import math

from llvmlite import ir

from kcompile.ir import u8

from ..loops import (FAST, I64, entry_alloca, broadcast_strides, const, fill, for_range, hreduce, i64, intrinsic, load,
                     loop_nest, offset, product, store, vector_range)
from . import lowering, run_time_extents
from .elementwise import evaluate, load_operand
from .parallel import parallel_for
from .context import storage_type


def _is_float(dtype) -> bool:
    return dtype.is_float


def _combine(kind, dtype):
    """combine(builder, a, b) for the reduction `kind` on values (scalars or vectors) of dtype."""
    unsigned = dtype == u8

    def emit(b, x, y):
        if kind in ("sum", "mean"):
            return b.fadd(x, y, flags=FAST) if _is_float(dtype) else b.add(x, y)
        if kind == "prod":
            return b.fmul(x, y, flags=FAST) if _is_float(dtype) else b.mul(x, y)
        if _is_float(dtype):
            return intrinsic(b, f"llvm.{kind}imum", [x, y])
        cmp = b.icmp_unsigned if unsigned else b.icmp_signed
        return b.select(cmp(">" if kind == "max" else "<", x, y), x, y)
    return emit


def _identity(kind, dtype):
    if kind in ("sum", "mean"):
        return 0.0 if _is_float(dtype) else 0
    if kind == "prod":
        return 1.0 if _is_float(dtype) else 1
    if _is_float(dtype):
        return -math.inf if kind == "max" else math.inf
    bits = 8 * dtype.itemsize
    if dtype == u8:
        return 0 if kind == "max" else -1  # 255 as a signed i8 literal
    return -(1 << (bits - 1)) if kind == "max" else (1 << (bits - 1)) - 1


def reduce_runs(shape, axes, leaf_shapes=()):
    """[(input axes, (reduced?, leaf flags))]: adjacent axes with the same key merged, static size-1
    axes dropped. A leaf flag says the leaf spans that axis (else it broadcasts along it)."""
    rank = len(shape)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in leaf_shapes]
    runs = []
    for ax, d in enumerate(shape):
        if d == 1:
            continue
        key = (ax in axes, tuple(s[ax] == d for s in padded))
        if runs and runs[-1][1] == key:
            runs[-1][0].append(ax)
        else:
            runs.append(([ax], key))
    return runs


def _source(x):
    """x's leaves (Value -> Buffer) and evaluate(builder, loaded leaves, width) -> x's elements.

    x is a stored tensor, or a fused elementwise prologue computed from its leaves on the fly."""
    if x.prologue is None:
        return {x.value: x}, lambda b, loaded, width: loaded[x.value]
    value, leaves = x.prologue
    return leaves, lambda b, loaded, width: evaluate(b, value, dict(loaded), width)


def _lower_reduce(kind):
    def lower(ctx):
        b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
        axes = tuple(a % x.rank for a in ctx.attrs["axes"]) or tuple(range(x.rank))
        elem = storage_type(x.dtype)
        leaves, value_of = _source(x)
        fill(b, y.ptr, y.numel(b), const(elem, _identity(kind, x.dtype)))
        runs = reduce_runs(x.shape, axes, [v.type.shape for v in leaves])
        sizes = [product(b, [x.dims[a] for a in r]) for r, _ in runs] or [i64(1)]
        keys = [k for _, k in runs] or [(True, tuple(False for _ in leaves))]
        row = _Row(x.dtype, elem, kind, value_of, list(leaves), keys[-1][1], ctx.target.lanes(x.dtype.itemsize))
        ptrs = [buf.ptr for buf in leaves.values()]
        finish = row.fold if keys[-1][0] else row.accumulate
        if len(sizes) == 1:
            finish(b, ptrs, y.ptr, sizes[0])
        elif keys[0][0]:  # the outermost run is reduced: every row updates the same outputs
            _rows(keys, finish, len(ptrs))(b, i64(0), sizes[0], ptrs + [y.ptr] + sizes)
        else:  # rows of the outermost (kept) run write disjoint outputs: split across the pool
            parallel_for(b, "reduce", ctx.nthreads, sizes[0], product(b, sizes[1:]), ptrs + [y.ptr] + sizes,
                         _rows(keys, finish, len(ptrs)))
        if kind == "mean":
            _divide(b, y, x, axes)
    return lower


def _rows(keys, finish, nptr):
    """body(b, lo, hi, [leaf pointers..., out pointer, run sizes...]) for rows [lo, hi) of run 0."""
    def body(b, lo, hi, vals):
        ptrs, out, sizes = vals[:nptr], vals[nptr], vals[nptr + 1:]
        leaf_strides = [broadcast_strides(b, sizes, [k[1][m] for k in keys]) for m in range(nptr)]
        out_strides = broadcast_strides(b, sizes, [not k[0] for k in keys])
        with for_range(b, hi, start=lo, name="red.r") as r:
            with loop_nest(b, sizes[1:-1], name="red") as idx:
                at = (r,) + idx
                bases = [b.gep(p, [offset(b, at, st[:-1])]) for p, st in zip(ptrs, leaf_strides)]
                finish(b, bases, b.gep(out, [offset(b, at, out_strides[:-1])]), sizes[-1])
    return body


class _Row:
    """The innermost loop of a reduction over one contiguous run of the input."""

    def __init__(self, dtype, elem, kind, value_of, leaves, full, lanes):
        self.dtype, self.elem, self.kind = dtype, elem, kind
        self.value_of, self.leaves, self.full, self.lanes = value_of, leaves, full, lanes
        self.combine = _combine(kind, dtype)

    def element(self, b, bases, i, width):
        loaded = {v: load_operand(b, base, i, width, f, v.type.dtype)
                  for v, base, f in zip(self.leaves, bases, self.full)}
        return self.value_of(b, loaded, width)

    def fold(self, b, bases, dst, count):
        """*dst = combine(*dst, fold(row)) with a vector accumulator (the row is reduced)."""
        vty = ir.VectorType(self.elem, self.lanes)
        acc_v, acc_s = entry_alloca(b, vty), entry_alloca(b, self.elem)
        b.store(const(vty, _identity(self.kind, self.dtype)), acc_v)
        b.store(b.load(dst), acc_s)

        def body(i, width):
            slot = acc_v if width > 1 else acc_s
            b.store(self.combine(b, b.load(slot), self.element(b, bases, i, width)), slot)

        vector_range(b, count, self.lanes, body, name="red.in")
        b.store(self.combine(b, b.load(acc_s), hreduce(b, b.load(acc_v), self.combine)), dst)

    def accumulate(self, b, bases, dst, count):
        """dst[j] = combine(dst[j], row[j]) (the row's axes are kept)."""
        def body(j, width):
            d = b.gep(dst, [j])
            store(b, self.combine(b, load(b, d, width), self.element(b, bases, j, width)), d)

        vector_range(b, count, self.lanes, body, name="red.row")


def _divide(b, y, x, axes):
    count = product(b, [x.dims[a] for a in axes])
    elem = storage_type(y.dtype)
    if y.dtype.is_float:
        scale = b.fdiv(ir.Constant(elem, 1.0), b.sitofp(count, elem))
    with for_range(b, y.numel(b), name="mean") as i:
        p = b.gep(y.ptr, [i])
        v = b.load(p)
        if y.dtype.is_float:
            b.store(b.fmul(v, scale), p)
        else:  # NumPy: float mean, then truncation toward zero (an empty mean must not trap)
            safe = b.select(b.icmp_signed("==", count, i64(0)), i64(1), count)
            b.store(b.sdiv(v, b.trunc(safe, elem) if elem.width < 64 else safe), p)


for _kind in ("sum", "mean", "max", "min", "prod"):
    lowering(f"reduce_{_kind}")(_lower_reduce(_kind))
    run_time_extents(f"reduce_{_kind}")   # runs over Buffer.dims; the mean divides by the run-time count


def _lower_arg(which):
    def lower(ctx):
        b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
        ax = ctx.attrs["axis"] % x.rank
        outer = product(b, x.dims[:ax])
        k = x.dims[ax]
        inner = product(b, x.dims[ax + 1:])
        best_v = entry_alloca(b, storage_type(x.dtype))
        best_i = entry_alloca(b, I64)
        with loop_nest(b, [outer, inner], name="arg") as (o, i):
            base = b.gep(x.ptr, [b.add(b.mul(o, b.mul(k, inner)), i)])
            b.store(b.load(base), best_v)
            b.store(i64(0), best_i)
            with for_range(b, k, start=1, name="arg.k") as j:
                v = b.load(b.gep(base, [b.mul(j, inner)]))
                take = _better(b, which, v, b.load(best_v), x.dtype)
                b.store(b.select(take, v, b.load(best_v)), best_v)
                b.store(b.select(take, j, b.load(best_i)), best_i)
            b.store(b.load(best_i), b.gep(y.ptr, [b.add(b.mul(o, inner), i)]))
    return lower


def _better(b, which, v, best, dtype):
    """v replaces best: strictly better, or the first NaN (NumPy's argmax/argmin treat NaN as extreme)."""
    op = ">" if which == "max" else "<"
    if dtype.is_float:
        first_nan = b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best))
        return b.or_(b.fcmp_ordered(op, v, best), first_nan)
    return (b.icmp_unsigned if dtype == u8 else b.icmp_signed)(op, v, best)


lowering("argmax")(_lower_arg("max"))
lowering("argmin")(_lower_arg("min"))

