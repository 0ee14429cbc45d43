"""gather, scatter_add and one_hot. Indices are checked: an out-of-range index never touches memory
outside the tensor (gather clamps it, scatter_add skips it) and sets the entry point's status, so
the caller raises a clear error; one_hot gives an all-zero row, as Keras does.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import u8

from ..loops import FAST, I64, copy_strided, fill, for_range, i64, loop_nest, product
from . import lowering, run_time_extents
from .context import STATUS_INDEX_OUT_OF_RANGE, storage_type


def _index_at(b, idx_buf, j):
    v = b.load(b.gep(idx_buf.ptr, [j]))
    if v.type.width == 64:
        return v
    return (b.zext if idx_buf.dtype == u8 else b.sext)(v, I64)


def _in_range(b, k, size):
    return b.and_(b.icmp_signed(">=", k, i64(0)), b.icmp_signed("<", k, size))


run_time_extents("gather", "scatter_add")   # outer/size/inner and the index count from Buffer.dims


@lowering("gather")
def lower_gather(ctx):
    b, (data, idx), (y,) = ctx.builder, ctx.ins, ctx.outs
    ax = ctx.attrs["axis"] % data.rank
    outer, size, inner = product(b, data.dims[:ax]), data.dims[ax], product(b, data.dims[ax + 1:])
    count = idx.numel(b)
    with loop_nest(b, [outer, count], name="gather") as (p, j):
        k = _index_at(b, idx, j)
        ok = _in_range(b, k, size)
        with b.if_then(b.not_(ok), likely=False):
            ctx.fail(STATUS_INDEX_OUT_OF_RANGE, b)
        k = b.select(ok, k, b.select(b.icmp_signed("<", k, i64(0)), i64(0), b.sub(size, i64(1))))
        src = b.gep(data.ptr, [b.mul(b.add(b.mul(p, size), k), inner)])
        dst = b.gep(y.ptr, [b.mul(b.add(b.mul(p, count), j), inner)])
        copy_strided(b, dst, [i64(1)], src, [i64(1)], [inner])


@lowering("scatter_add")
def lower_scatter_add(ctx):
    b, (idx, upd), (y,) = ctx.builder, ctx.ins, ctx.outs
    ax = ctx.attrs["axis"] % y.rank
    elem = storage_type(y.dtype)
    fill(b, y.ptr, y.numel(b), ir.Constant(elem, 0.0 if y.dtype.is_float else 0))
    outer, size, inner = product(b, y.dims[:ax]), y.dims[ax], product(b, y.dims[ax + 1:])
    count = idx.numel(b)
    with loop_nest(b, [outer, count], name="scatter") as (p, j):
        k = _index_at(b, idx, j)
        ok = _in_range(b, k, size)
        with b.if_else(ok, likely=True) as (then, otherwise):
            with then:
                dst = b.gep(y.ptr, [b.mul(b.add(b.mul(p, size), k), inner)])
                src = b.gep(upd.ptr, [b.mul(b.add(b.mul(p, count), j), inner)])
                with for_range(b, inner, name="scatter.in") as t:
                    d = b.gep(dst, [t])
                    v = b.load(b.gep(src, [t]))
                    b.store(b.fadd(b.load(d), v, flags=FAST) if y.dtype.is_float else b.add(b.load(d), v), d)
            with otherwise:
                ctx.fail(STATUS_INDEX_OUT_OF_RANGE, b)


@lowering("one_hot")
def lower_one_hot(ctx):
    b, (idx,), (y,) = ctx.builder, ctx.ins, ctx.outs
    depth = i64(ctx.attrs["depth"])
    elem = storage_type(y.dtype)
    zero = ir.Constant(elem, 0.0 if y.dtype.is_float else 0)
    one = ir.Constant(elem, 1.0 if y.dtype.is_float else 1)
    fill(b, y.ptr, y.numel(b), zero)
    with for_range(b, idx.numel(b), name="onehot") as j:
        k = _index_at(b, idx, j)
        with b.if_then(_in_range(b, k, depth)):
            b.store(one, b.gep(y.ptr, [b.add(b.mul(j, depth), k)]))
