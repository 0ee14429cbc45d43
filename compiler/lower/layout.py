"""Layout ops as strided copies: transpose, concat, split, slice, pad, and views that must copy.

reshape, expand_dims and squeeze are free views (codegen aliases the buffer) except when their
result is a graph output; then they are a flat copy into the caller's buffer.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import ops_with

from ..loops import copy_strided, fill, i64, row_major_strides
from . import lowering, run_time_extents
from .context import storage_type


# strided copies over Buffer.dims (split's sections are static: its inference refuses a symbolic split axis)
run_time_extents(*ops_with("view"), "transpose", "concat", "split")


@lowering(*ops_with("view"))
def lower_view_copy(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    n = x.numel(b)
    copy_strided(b, y.ptr, [i64(1)], x.ptr, [i64(1)], [n])


@lowering("transpose")
def lower_transpose(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    perm = ctx.attrs["perm"]
    xs = row_major_strides(b, x.dims)
    copy_strided(b, y.ptr, row_major_strides(b, y.dims), x.ptr, [xs[p] for p in perm], y.dims)


def _axis(ctx, rank):
    return ctx.attrs["axis"] % rank


@lowering("concat")
def lower_concat(ctx):
    b, (y,) = ctx.builder, ctx.outs
    ax = _axis(ctx, y.rank)
    ys = row_major_strides(b, y.dims)
    start = i64(0)
    for x in ctx.ins:
        dst = b.gep(y.ptr, [b.mul(start, ys[ax])])
        copy_strided(b, dst, ys, x.ptr, row_major_strides(b, x.dims), x.dims)
        start = b.add(start, x.dims[ax])


@lowering("split")
def lower_split(ctx):
    b, (x,) = ctx.builder, ctx.ins
    ax = _axis(ctx, x.rank)
    xs = row_major_strides(b, x.dims)
    start = 0
    for y, size in zip(ctx.outs, ctx.attrs["sections"]):
        src = b.gep(x.ptr, [b.mul(i64(start), xs[ax])])
        copy_strided(b, y.ptr, row_major_strides(b, y.dims), src, xs, y.dims)
        start += size


@lowering("slice")
def lower_slice(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    xs = row_major_strides(b, x.dims)
    src_strides, start = list(xs), i64(0)
    steps = ctx.attrs["steps"] or (1,) * len(ctx.attrs["axes"])
    for ax, s, e, st in zip(ctx.attrs["axes"], ctx.attrs["starts"], ctx.attrs["ends"], steps):
        ax %= x.rank
        r = range(x.shape[ax])[slice(s, e, st)]  # sliced axes are static (the op forbids the batch axis)
        start = b.add(start, b.mul(i64(r.start if len(r) else 0), xs[ax]))
        src_strides[ax] = b.mul(xs[ax], i64(st))
    copy_strided(b, y.ptr, row_major_strides(b, y.dims), b.gep(x.ptr, [start]), src_strides, y.dims)


@lowering("pad")
def lower_pad(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    pads = ctx.attrs["pads"]
    elem = storage_type(y.dtype)
    value = ctx.attrs["value"]
    if y.dtype.is_float:
        fill_value = ir.Constant(elem, value)
    elif y.dtype.name == "bool":
        fill_value = ir.Constant(elem, int(bool(value)))
    else:
        fill_value = ir.Constant(elem, _wrap(int(value), elem.width))
    fill(b, y.ptr, y.numel(b), fill_value)
    ys = row_major_strides(b, y.dims)
    start = i64(0)
    for ax in range(y.rank):
        start = b.add(start, b.mul(i64(pads[2 * ax]), ys[ax]))
    copy_strided(b, b.gep(y.ptr, [start]), ys, x.ptr, row_major_strides(b, x.dims), x.dims)


def _wrap(v: int, bits: int) -> int:
    """NumPy's astype for an int fill value: wrap to the width, as a signed LLVM literal."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v
