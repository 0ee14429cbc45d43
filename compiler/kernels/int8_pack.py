"""Packing for the int8 GEMM: A rows into u8-space i32 words, B into k-group panels, plus the sums
that turn the raw u8 x s8 products into (a - a_zp) x (b - b_zp) exactly.

With a_u = a (u8) or a + 128 (i8, flipped sign bit) and az = a_zp in the same space, for each
output (r, c) over the K real k values:

    sum (a_u - az)(b - bz) = raw - az * colsum(b)[c] - bz[c] * rowsum(a_u)[r] + K * az * bz[c]

raw comes from the micro-kernel; the packer of B stores colterm[c] = K*az*bz[c] - az*colsum[c]
and bz[c] per column, the packer of A rowsum[r]. Padding (K to whole groups, rows to MR, columns
to NR) is zeros, which add nothing to raw or to the sums. Everything wraps modulo 2^32, as the
reference's i32 accumulation does.

Row sources write the K u8-space values of one A row into a row buffer:
  MatrixRows  row r of a row-major [M, K] matrix
  WindowRows  row r = (n, oh, ow) of an NHWC convolution's implicit im2col matrix (k = kh, kw, ci);
              taps in the padding read az, which contributes nothing (ONNX pads with x_zero_point)
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from .geometry import Geometry
from .int8_isa import Int8Isa
from ..loops import I8, I32, entry_alloca, for_range, gep, i64, imin, load_vec, store_vec, zero

SIGN_FLIP = ir.Constant(I8, 0x80)


def to_u8_space(b: ir.IRBuilder, v, signed: bool):
    """An A byte as unsigned: i8 + 128 is the byte with its top bit flipped."""
    return b.xor(v, SIGN_FLIP) if signed else v


@dataclass(frozen=True)
class MatrixRows:
    k: int
    signed: bool

    def fill(self, b, a, row, group, rowbuf, az):
        src = gep(b, a, b.mul(row, i64(self.k)))
        with for_range(b, 0, self.k, name="a.k") as k:
            b.store(to_u8_space(b, b.load(gep(b, src, k)), self.signed), gep(b, rowbuf, k))


@dataclass(frozen=True)
class WindowRows:
    geo: Geometry
    signed: bool

    @property
    def k(self) -> int:
        g = self.geo
        return g.kh * g.kw * g.cin_g

    def fill(self, b, x, row, group, rowbuf, az):
        g = self.geo
        pix = b.srem(row, i64(g.oh * g.ow))
        n, oh, ow = b.sdiv(row, i64(g.oh * g.ow)), b.sdiv(pix, i64(g.ow)), b.srem(pix, i64(g.ow))
        c0 = b.mul(group, i64(g.cin_g))
        with for_range(b, 0, g.kh, name="kh") as kh:
            ih = b.sub(b.add(b.mul(oh, i64(g.sh)), b.mul(kh, i64(g.dh))), i64(g.pt))
            with for_range(b, 0, g.kw, name="kw") as kw:
                iw = b.sub(b.add(b.mul(ow, i64(g.sw)), b.mul(kw, i64(g.dw))), i64(g.pl))
                inside = b.and_(_within(b, ih, g.h), _within(b, iw, g.w))
                dst = gep(b, rowbuf, b.mul(b.add(b.mul(kh, i64(g.kw)), kw), i64(g.cin_g)))
                pix_in = b.add(b.mul(b.add(b.mul(n, i64(g.h)), ih), i64(g.w)), iw)
                with b.if_else(inside) as (then, otherwise):
                    with then:
                        src = b.gep(x, [b.add(b.mul(pix_in, i64(g.c)), c0)])
                        with for_range(b, 0, g.cin_g, name="ci") as ci:
                            v = to_u8_space(b, b.load(b.gep(src, [ci])), self.signed)
                            b.store(v, gep(b, dst, ci))
                    with otherwise:
                        with for_range(b, 0, g.cin_g, name="cp") as ci:
                            b.store(az, gep(b, dst, ci))


def _within(b, i, size: int):
    return b.and_(b.icmp_signed(">=", i, i64(0)), b.icmp_signed("<", i, i64(size)))


def pack_a(b, isa: Int8Isa, source, a, group, m0, mc, kgroups: int, apack, rowsum, rowbuf, az):
    """Rows [m0, m0 + mc) as MR-row tiles: apack[(tile*kgroups + g)*MR + r] = the A word; rowsum[row]."""
    G, k = isa.group, source.k
    with for_range(b, k, kgroups * G, name="a.pad") as t:   # the tail of the last group stays zero
        b.store(ir.Constant(I8, 0), gep(b, rowbuf, t))
    ntiles = b.sdiv(b.add(mc, i64(isa.mr - 1)), i64(isa.mr))
    with for_range(b, 0, b.mul(ntiles, i64(isa.mr)), name="a.row") as r:
        tile_base = gep(b, apack, b.mul(b.sdiv(r, i64(isa.mr)), i64(kgroups * isa.mr)))
        slot = b.srem(r, i64(isa.mr))
        live = b.icmp_signed("<", r, mc)
        with b.if_then(live):
            source.fill(b, a, b.add(m0, r), group, rowbuf, az)
        total = _row_sum(b, rowbuf, k)
        b.store(b.select(live, total, ir.Constant(I32, 0)), gep(b, rowsum, r))
        with for_range(b, 0, kgroups, name="a.g") as g:
            word = isa.a_word(b, gep(b, rowbuf, b.mul(g, i64(G))))
            b.store(b.select(live, word, ir.Constant(I32, 0)), gep(b, tile_base, b.add(b.mul(g, i64(isa.mr)), slot)))


def _row_sum(b, rowbuf, k: int):
    acc = entry_alloca(b, I32, 1, 4)
    b.store(ir.Constant(I32, 0), acc)
    with for_range(b, 0, k, name="a.sum") as t:
        b.store(b.add(b.load(acc), b.zext(b.load(gep(b, rowbuf, t)), I32)), acc)
    return b.load(acc)


def pack_b(b, isa: Int8Isa, w, ldb: int, k: int, kgroups: int, col0, nc, nc_pad, bpack, colterm, bzv,
           bzp, bz_per_col: bool, az):
    """Columns [col0, col0 + nc) of w (row stride ldb) as NR-column panels of k groups, plus the
    per-column correction terms; columns up to nc_pad are zero.

    Whole vectors of columns are loaded `group` rows at a time and interleaved in registers; rows
    past K are zeroed by a select after re-reading row K-1 (never past the matrix); a vector of
    columns that crosses nc (the last of a block) is packed byte by byte."""
    G, nr, lanes = isa.group, isa.nr, isa.lanes
    vbytes = lanes * G
    with for_range(b, 0, nc_pad, lanes, name="b.vec") as c:
        panel = gep(b, bpack, b.add(b.mul(b.sdiv(c, i64(nr)), i64(kgroups * nr * G)), b.mul(b.srem(c, i64(nr)), i64(G))))
        src = b.gep(w, [b.add(col0, c)])
        with b.if_else(b.icmp_signed("<=", b.add(c, i64(lanes)), nc)) as (whole, edge):
            with whole:
                with for_range(b, 0, kgroups, name="b.g") as g:
                    rows = []
                    for t in range(G):
                        kk = b.add(b.mul(g, i64(G)), i64(t))
                        v = load_vec(b, b.gep(src, [b.mul(imin(b, kk, i64(k - 1)), i64(ldb))]), lanes)
                        rows.append(b.select(b.icmp_signed("<", kk, i64(k)), v, zero(v.type)))
                    store_vec(b, isa.interleave(b, rows), gep(b, panel, b.mul(g, i64(nr * G))))
            with edge:
                _pack_columns_bytewise(b, isa, w, ldb, k, kgroups, src, b.sub(nc, c), panel)
        # colsum of the packed bytes: one dot step per k group with A words of ones
        ones = ir.Constant(I32, {4: 0x01010101, 2: 0x00010001, 1: 1}[G])
        total = entry_alloca(b, ir.VectorType(I32, lanes), 1, 4)
        b.store(zero(total.type.pointee), total)
        with for_range(b, 0, kgroups, name="b.sum") as g:
            bvec = isa.load_b(b, gep(b, panel, b.mul(g, i64(nr * G))))
            b.store(isa.dot(b, b.load(total), ones, bvec), total)
        store_vec(b, b.load(total), gep(b, colterm, c))
    kz = b.mul(az, ir.Constant(I32, k))
    with for_range(b, 0, nc_pad, name="b.col") as c:
        live = b.icmp_signed("<", c, nc)
        col = b.add(col0, imin(b, c, b.sub(nc, i64(1))))     # dead columns re-read a live one
        bz = b.sext(b.load(b.gep(bzp, [col]) if bz_per_col else bzp), I32)
        bz = b.select(live, bz, ir.Constant(I32, 0))
        term = b.sub(b.mul(kz, bz), b.mul(az, b.load(gep(b, colterm, c))))
        b.store(b.select(live, term, ir.Constant(I32, 0)), gep(b, colterm, c))
        b.store(bz, gep(b, bzv, c))


def _pack_columns_bytewise(b, isa, w, ldb, k, kgroups, src, valid, panel):
    """One vector of columns, `valid` of them real (the others and rows past K are zero)."""
    G = isa.group
    with for_range(b, 0, isa.lanes, name="b.j") as j:
        live = b.icmp_signed("<", j, valid)
        jj = imin(b, j, b.sub(valid, i64(1)))
        with for_range(b, 0, kgroups * G, name="b.k") as kk:
            real = b.and_(live, b.icmp_signed("<", kk, i64(k)))
            v = b.load(b.gep(src, [b.add(b.mul(imin(b, kk, i64(k - 1)), i64(ldb)), jj)]))
            dst = b.add(b.mul(b.sdiv(kk, i64(G)), i64(isa.nr * G)), b.add(b.mul(j, i64(G)), b.srem(kk, i64(G))))
            b.store(b.select(real, v, ir.Constant(I8, 0)), gep(b, panel, dst))
