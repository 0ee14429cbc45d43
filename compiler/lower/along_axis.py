"""cumsum and top_k as loops along one axis.

cumsum sees the tensor as [outer, T, inner] and walks T (backwards when reverse), adding each slice
to the previous output slice, so the inner loop runs over contiguous memory. top_k keeps each row's
k best in the outputs by insertion (O(n*k) per row, for the small k of attention and metrics): an
element goes after every kept element >= it, so equal values keep their original order.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import u8

from ..loops import FAST, I32, entry_alloca, for_range, i64, imin, loop_nest, product
from . import lowering


def _add(b, x, y, is_float):
    return b.fadd(x, y, flags=FAST) if is_float else b.add(x, y)


@lowering("cumsum")
def lower_cumsum(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    ax = ctx.attrs["axis"] % x.rank
    outer, size, inner = product(b, x.dims[:ax]), x.dims[ax], product(b, x.dims[ax + 1:])
    reverse, is_float = ctx.attrs["reverse"], x.dtype.is_float
    with loop_nest(b, [outer, size], name="cumsum") as (o, t):
        s = b.sub(b.sub(size, i64(1)), t) if reverse else t
        first = b.icmp_signed("==", t, i64(0))
        prev = b.select(first, s, b.add(s, i64(1)) if reverse else b.sub(s, i64(1)))  # in bounds even at t=0
        row, prev_row = b.mul(b.add(b.mul(o, size), s), inner), b.mul(b.add(b.mul(o, size), prev), inner)
        with for_range(b, inner, name="cumsum.in") as j:
            v = b.load(b.gep(x.ptr, [b.add(row, j)]))
            before = b.load(b.gep(y.ptr, [b.add(prev_row, j)]))
            b.store(b.select(first, v, _add(b, v, before, is_float)), b.gep(y.ptr, [b.add(row, j)]))


def _at_least(b, kept, v, dtype):
    """Whether `kept` ranks ahead of the new value v: NaN ranks above every number (as JAX, torch and
    onnxruntime's TopK) and after earlier NaNs, as the reference's stable sort; an ordered >= alone
    would let every comparison with a NaN fail and scramble the row."""
    if dtype.is_float:
        kept_nan = b.fcmp_unordered("uno", kept, kept)
        return b.or_(kept_nan, b.fcmp_ordered(">=", kept, v))   # ordered >= is false when v is NaN
    return (b.icmp_unsigned if dtype == u8 else b.icmp_signed)(">=", kept, v)


@lowering("top_k")
def lower_top_k(ctx):
    b, (x,), (vals, idx) = ctx.builder, ctx.ins, ctx.outs
    n, k = x.shape[-1], ctx.attrs["k"]
    pos = entry_alloca(b, ir.IntType(64), align=8, name="topk.pos")
    with loop_nest(b, [product(b, x.dims[:-1]), i64(n)], name="topk") as (r, i):
        v = b.load(b.gep(x.ptr, [b.add(b.mul(r, i64(n)), i)]))
        vrow, irow = b.gep(vals.ptr, [b.mul(r, i64(k))]), b.gep(idx.ptr, [b.mul(r, i64(k))])
        filled = imin(b, i, i64(k))
        b.store(i64(0), pos)
        with for_range(b, filled, name="topk.rank") as j:  # p = how many kept values are >= v
            ahead = _at_least(b, b.load(b.gep(vrow, [j])), v, x.dtype)
            b.store(b.add(b.load(pos), b.zext(ahead, ir.IntType(64))), pos)
        p = b.load(pos)
        with b.if_then(b.icmp_signed("<", p, i64(k))):
            last = imin(b, filled, i64(k - 1))  # the slot the shift fills (the k-th value falls off)
            with for_range(b, b.sub(last, p), name="topk.shift") as t:
                dst = b.sub(last, t)
                src = b.sub(dst, i64(1))
                b.store(b.load(b.gep(vrow, [src])), b.gep(vrow, [dst]))
                b.store(b.load(b.gep(irow, [src])), b.gep(irow, [dst]))
            b.store(v, b.gep(vrow, [p]))
            b.store(b.trunc(i, I32), b.gep(irow, [p]))
