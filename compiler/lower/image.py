"""resize and affine_transform (ir/ops/image.py): scalar loop nests over (batch, row, column) with
the channels innermost. resize reads static tap tables (index, weight) built from the op's own
resampling matrices; affine_transform computes each source point in the reference's float order
(no FMA contraction), so the two agree bit for bit."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from kcompile.ir import i64 as i64_dtype
from kcompile.ir.ops.image import COORD_LIMIT, resize_weights

from ..loops import I64, for_range, i64, imax, imin, intrinsic, loop_nest
from . import lowering
from .constants import constant_pointer
from .context import storage_type


def _tap_tables(module, size_in: int, size_out: int, interpolation: str, dtype):
    """(index pointer, weight pointer, taps per row): the nonzeros of one axis's resampling matrix."""
    w = resize_weights(size_in, size_out, interpolation)
    taps = max(1, int((w != 0).sum(axis=1).max()))
    idx = np.zeros((size_out, taps), np.int64)
    wt = np.zeros((size_out, taps), dtype.np)
    for o, row in enumerate(w):
        nz = np.flatnonzero(row)
        idx[o, :len(nz)], wt[o, :len(nz)] = nz, row[nz]
    return constant_pointer(module, idx, i64_dtype), constant_pointer(module, wt, dtype), taps


@lowering("resize")
def lower_resize(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    (_, h, w, _), (oh, ow) = x.shape, ctx.attrs["size"]
    interp = ctx.attrs["interpolation"]
    hi, hw, kh = _tap_tables(ctx.module, h, oh, interp, x.dtype)
    wi, ww, kw = _tap_tables(ctx.module, w, ow, interp, x.dtype)
    ch = x.dims[3]
    zero = ir.Constant(storage_type(x.dtype), 0.0)
    with loop_nest(b, [x.dims[0], i64(oh), i64(ow)], name="resize") as (n, o, p):
        rows = [_tap(b, hi, hw, o, kh, t) for t in range(kh)]
        cols = [_tap(b, wi, ww, p, kw, t) for t in range(kw)]
        out_base = b.mul(b.add(b.mul(b.add(b.mul(n, i64(oh)), o), i64(ow)), p), ch)
        with for_range(b, ch, name="resize.c") as c:
            acc = zero
            for r, rw in rows:
                for col, cw in cols:
                    v = b.load(b.gep(x.ptr, [_pixel(b, n, r, col, c, h, w, ch)]))
                    acc = b.fadd(acc, b.fmul(b.fmul(rw, cw), v))
            b.store(acc, b.gep(y.ptr, [b.add(out_base, c)]))


def _tap(b, idx_ptr, wt_ptr, row, taps: int, t: int):
    at = b.add(b.mul(row, i64(taps)), i64(t))
    return b.load(b.gep(idx_ptr, [at])), b.load(b.gep(wt_ptr, [at]))


def _pixel(b, n, r, col, c, h: int, w: int, ch):
    return b.add(b.mul(b.add(b.mul(b.add(b.mul(n, i64(h)), r), i64(w)), col), ch), c)


@lowering("affine_transform")
def lower_affine_transform(ctx):
    b, (x, t), (y,) = ctx.builder, ctx.ins, ctx.outs
    _, h, w, _ = x.shape
    ch, ft = x.dims[3], storage_type(x.dtype)
    per_image = t.rank == 2 and t.shape[0] != 1
    with loop_nest(b, [x.dims[0], i64(h), i64(w)], name="warp") as (n, i, j):
        row = b.mul(n, i64(8)) if per_image else i64(0)
        a0, a1, a2, b0, b1, b2, c0, c1 = (b.load(b.gep(t.ptr, [b.add(row, i64(k))])) for k in range(8))
        xf, yf = b.sitofp(j, ft), b.sitofp(i, ft)
        k = b.fadd(b.fadd(b.fmul(c0, xf), b.fmul(c1, yf)), ir.Constant(ft, 1.0))
        x_in = _clamp(b, b.fdiv(b.fadd(b.fadd(b.fmul(a0, xf), b.fmul(a1, yf)), a2), k))
        y_in = _clamp(b, b.fdiv(b.fadd(b.fadd(b.fmul(b0, xf), b.fmul(b1, yf)), b2), k))
        rows = _taps(b, y_in, h, ctx.attrs)
        cols = _taps(b, x_in, w, ctx.attrs)
        fill = ir.Constant(ft, ctx.attrs["fill_value"])
        out_base = b.mul(b.add(b.mul(b.add(b.mul(n, i64(h)), i), i64(w)), j), ch)
        with for_range(b, ch, name="warp.c") as c:
            acc = None
            for r, rv, rw in rows:
                for col, cv, cw in cols:
                    v = b.load(b.gep(x.ptr, [_pixel(b, n, r, col, c, h, w, ch)]))
                    if rv is not None:
                        v = b.select(b.and_(rv, cv), v, fill)
                    term = b.fmul(b.fmul(rw, cw), v)
                    acc = term if acc is None else b.fadd(acc, term)
            b.store(acc, b.gep(y.ptr, [b.add(out_base, c)]))


def _clamp(b, v):
    """Into [-2**24, 2**24], NaN to the low end (llvm.maxnum/minnum ignore a NaN operand, as np.fmax)."""
    lim = float(COORD_LIMIT)
    return intrinsic(b, "llvm.minnum", [intrinsic(b, "llvm.maxnum", [v, ir.Constant(v.type, -lim)]),
                                        ir.Constant(v.type, lim)])


def _taps(b, p, n: int, attrs):
    """[(in-bounds index, valid flag or None, weight)] along one axis, as the reference's _taps."""
    one = ir.Constant(p.type, 1.0)
    if attrs["interpolation"] == "nearest":
        raw = [(b.fptosi(intrinsic(b, "llvm.round", [p]), I64), one)]
    else:
        lo = intrinsic(b, "llvm.floor", [p])
        upper = b.fsub(p, lo)
        i0 = b.fptosi(lo, I64)
        raw = [(i0, b.fsub(one, upper)), (b.add(i0, i64(1)), upper)]
    mode, out = attrs["fill_mode"], []
    for idx, wt in raw:
        valid = None
        if mode == "constant":
            valid = b.and_(b.icmp_signed(">=", idx, i64(0)), b.icmp_signed("<", idx, i64(n)))
        fixed = _fix_index(b, idx, n, mode)
        out.append((imin(b, imax(b, fixed, 0), n - 1), valid, wt))   # in bounds whatever the mode
    return out


def _pmod(b, v, m: int):
    """v mod m in [0, m) for a positive constant m."""
    r = b.srem(v, i64(m))
    return b.select(b.icmp_signed("<", r, i64(0)), b.add(r, i64(m)), r)


def _abs(b, v):
    return b.select(b.icmp_signed("<", v, i64(0)), b.sub(i64(0), v), v)


def _fix_index(b, i, n: int, mode: str):
    if mode == "wrap":
        return _pmod(b, i, n)
    if mode == "mirror":
        return i64(0) if n == 1 else _abs(b, b.sub(_pmod(b, b.add(i, i64(n - 1)), 2 * (n - 1)), i64(n - 1)))
    if mode == "reflect":
        m = _abs(b, b.sub(_pmod(b, b.add(b.add(b.mul(i, i64(2)), i64(1)), i64(2 * n)), 4 * n), i64(2 * n)))
        return b.sdiv(b.sub(m, i64(1)), i64(2))   # m is odd and >= 1: exact, no floor needed
    return i   # constant (masked by the caller) and nearest (clamped by the caller)
