"""softmax and log_softmax along any axis: three passes over each row (max, sum of exp, scale).

The tensor is seen as [outer, K, inner]; when inner is 1 (the usual last axis) the passes run in
vectors along K, otherwise each of the inner columns runs as a strided scalar row.
"""
from __future__ import annotations

import math

from llvmlite import ir

from ..loops import (FAST, entry_alloca, const, for_range, hreduce, i64, intrinsic, load, product, splat, store,
                     vector_range)
from . import lowering, mathfns
from .parallel import parallel_for
from .context import storage_type


def _row_loop(b, count, stride, lanes, body, name):
    """body(index, width, element offset) over one row; vectors only when the row is contiguous."""
    if stride is None:
        vector_range(b, count, lanes, lambda k, w: body(k, w, k), name=name)
    else:
        with for_range(b, count, name=name) as k:
            body(k, 1, b.mul(k, stride))


def _fold(b, slot_v, slot_s, combine):
    s = b.load(slot_s)
    return combine(b, s, hreduce(b, b.load(slot_v), combine)) if slot_v is not None else s


def _row(b, x, y, count, stride, lanes, elem, log):
    vty = ir.VectorType(elem, lanes) if stride is None and lanes > 1 else None
    slots = {k: (entry_alloca(b, vty) if vty else None, entry_alloca(b, elem)) for k in ("max", "sum")}

    def acc(key, width, value, combine):
        slot = slots[key][0] if width > 1 else slots[key][1]
        b.store(combine(b, b.load(slot), value), slot)

    def vmax(bb, p, q):
        # maxnum (one vmaxps) rather than maximum (NaN-propagating: a blend, a compare and a masked
        # move on the loop's dependency chain): a NaN in the row makes the sum of exps NaN, hence
        # every output NaN, whichever maximum the row gets
        return intrinsic(bb, "llvm.maxnum", [p, q])

    def fadd(bb, p, q):
        return bb.fadd(p, q, flags=FAST)

    for key, init in (("max", -math.inf), ("sum", 0.0)):
        if vty:
            b.store(const(vty, init), slots[key][0])
        b.store(ir.Constant(elem, init), slots[key][1])
    _row_loop(b, count, stride, lanes, lambda k, w, off: acc("max", w, load(b, b.gep(x, [off]), w), vmax), "sm.max")
    mx = _fold(b, *slots["max"], vmax)

    def exp_pass(k, w, off):
        e = mathfns.exp(b, b.fsub(load(b, b.gep(x, [off]), w), splat(b, mx, w)))
        if not log:
            store(b, e, b.gep(y, [off]))
        acc("sum", w, e, fadd)

    _row_loop(b, count, stride, lanes, exp_pass, "sm.exp")
    total = _fold(b, *slots["sum"], fadd)
    if log:
        shift = b.fadd(mx, mathfns.log(b, total))
        _row_loop(b, count, stride, lanes, lambda k, w, off: store(
            b, b.fsub(load(b, b.gep(x, [off]), w), splat(b, shift, w)), b.gep(y, [off])), "sm.out")
    else:
        inv = b.fdiv(ir.Constant(elem, 1.0), total)
        _row_loop(b, count, stride, lanes, lambda k, w, off: store(
            b, b.fmul(load(b, b.gep(y, [off]), w), splat(b, inv, w)), b.gep(y, [off])), "sm.out")


def softmax_row(b, x, y, count, lanes, elem):
    """y[:count] = softmax(x[:count]) over one contiguous row (x may be y); the fused attention kernel's rows."""
    _row(b, x, y, count, None, lanes, elem, False)


def _lower(log):
    def lower(ctx):
        b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
        ax = ctx.attrs["axis"] % x.rank
        elem = storage_type(x.dtype)
        outer, k = product(b, x.dims[:ax]), x.dims[ax]
        contiguous = all(d == 1 for d in x.shape[ax + 1:])
        inner = i64(1) if contiguous else product(b, x.dims[ax + 1:])
        lanes = ctx.target.lanes(x.dtype.itemsize)
        if contiguous and isinstance(x.shape[ax], int) and 1 < x.shape[ax] < lanes:
            # a row shorter than a vector (10 classes) would run all in the scalar tail: the widest
            # power of two it holds instead (MNIST's softmax over 10: 8 lanes and 2 scalars)
            lanes = 1 << (x.shape[ax].bit_length() - 1)

        def rows(bb, lo, hi, vals):  # rows are independent: split across the pool
            xp, yp, kk, nin = vals
            with for_range(bb, hi, start=lo, name="sm.r") as r:
                base = (bb.mul(r, kk) if contiguous   # (no division per row on the usual last axis)
                        else bb.add(bb.mul(bb.sdiv(r, nin), bb.mul(kk, nin)), bb.srem(r, nin)))
                _row(bb, bb.gep(xp, [base]), bb.gep(yp, [base]), kk, None if contiguous else nin, lanes, elem, log)

        parallel_for(b, "softmax", ctx.nthreads, b.mul(outer, inner), k, [x.ptr, y.ptr, k, inner], rows)
    return lower


lowering("softmax")(_lower(False))
lowering("log_softmax")(_lower(True))
