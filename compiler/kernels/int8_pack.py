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
              taps in the padding read az, which contributes nothing (ONNX pads with x_zero_point).
              With a fused k x k max pool (pool = k), rows come in pool-window order (conv_pixel).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from .geometry import Geometry
from .int8_isa import Int8Isa
from ..loops import I8, I32, declare_intrinsic, entry_alloca, for_range, gep, i64, imin, load_vec, splat, store_vec, zero

SIGN_FLIP = ir.Constant(I8, 0x80)


def to_u8_space(b: ir.IRBuilder, v, signed: bool):
    """An A byte as unsigned: i8 + 128 is the byte with its top bit flipped."""
    return b.xor(v, SIGN_FLIP) if signed else v


CHUNK = 16                 # bytes per vector step of the row copies and sums
UNROLL_BYTES = 512         # static row spans up to this many bytes are emitted straight-line
UNROLL_TAPS = 64           # convolution windows up to this many taps are unrolled


def rowbuf_bytes(kgroups: int, group: int) -> int:
    """The row buffer's size: whole k groups, rounded up to whole CHUNKs (the tail stays zero)."""
    return max(CHUNK, -(-kgroups * group // CHUNK) * CHUNK)


def _steps(b, n: int, step: int, body, name: str):
    """body(offset) for offset in range(0, n, step) (n static): unrolled when short, else a loop."""
    if n > UNROLL_BYTES:
        with for_range(b, 0, n, step, name=name) as off:
            body(off)
    else:
        for off in range(0, n, step):
            body(i64(off))


def copy_u8(b, src, dst, n: int, signed: bool):
    """dst[0:n] = src[0:n] in u8 space (n static): whole 16-byte vectors, then single bytes."""
    whole = n // CHUNK * CHUNK
    flip = ir.Constant(ir.VectorType(I8, CHUNK), [0x80] * CHUNK)

    def chunk(off):
        v = load_vec(b, gep(b, src, off), CHUNK)
        store_vec(b, b.xor(v, flip) if signed else v, gep(b, dst, off))

    _steps(b, whole, CHUNK, chunk, "a.copy")
    for t in range(whole, n):
        b.store(to_u8_space(b, b.load(gep(b, src, i64(t))), signed), gep(b, dst, i64(t)))


def _fill_byte(b, dst, n: int, value):
    """dst[0:n] = value (n static)."""
    whole = n // CHUNK * CHUNK
    _steps(b, whole, CHUNK, lambda off: store_vec(b, splat(b, value, CHUNK), gep(b, dst, off)), "a.fill")
    for t in range(whole, n):
        b.store(value, gep(b, dst, i64(t)))


@dataclass(frozen=True)
class MatrixRows:
    k: int
    signed: bool

    @property
    def real_k(self) -> int:   # the products a result sums (a window layout pads K: int8_window.py)
        return self.k

    def fill(self, b, a, row, group, rowbuf, az):
        copy_u8(b, gep(b, a, b.mul(row, i64(self.k))), rowbuf, self.k, self.signed)


def conv_rows_per_image(geo: Geometry, pool: int = 0) -> int:
    """GEMM rows a convolution computes per image: every output pixel, or with a fused k x k max pool
    only the pixels of whole pool windows ('valid' pooling drops the last rows/columns)."""
    return geo.oh * geo.ow if not pool else (geo.oh // pool) * (geo.ow // pool) * pool * pool


def conv_pixel(b, geo: Geometry, row, pool: int = 0):
    """(n, oh, ow) of GEMM row `row`: pixels row-major, or with pool = k the k*k pixels of each pool
    window on consecutive rows (windows row-major), so a register tile of whole windows can take the
    max of its rows (int8_microkernel.Requantize.pool)."""
    if not pool:
        pix = b.srem(row, i64(geo.oh * geo.ow))
        return b.sdiv(row, i64(geo.oh * geo.ow)), b.sdiv(pix, i64(geo.ow)), b.srem(pix, i64(geo.ow))
    ph, pw, kk = geo.oh // pool, geo.ow // pool, pool * pool
    win, t = b.sdiv(row, i64(kk)), b.srem(row, i64(kk))
    p = b.srem(win, i64(ph * pw))
    oh = b.add(b.mul(b.sdiv(p, i64(pw)), i64(pool)), b.sdiv(t, i64(pool)))
    ow = b.add(b.mul(b.srem(p, i64(pw)), i64(pool)), b.srem(t, i64(pool)))
    return b.sdiv(win, i64(ph * pw)), oh, ow


@dataclass(frozen=True)
class WindowRows:
    geo: Geometry
    signed: bool
    pool: int = 0       # rows in k x k pool-window order (conv_pixel)

    @property
    def k(self) -> int:
        g = self.geo
        return g.kh * g.kw * g.cin_g

    real_k = k

    def always_inside(self) -> bool:
        """No tap of any output pixel falls in the padding (then no bounds checks are emitted)."""
        g = self.geo
        return (g.pt == 0 and g.pl == 0 and (g.oh - 1) * g.sh + (g.kh - 1) * g.dh < g.h
                and (g.ow - 1) * g.sw + (g.kw - 1) * g.dw < g.w)

    def fill(self, b, x, row, group, rowbuf, az):
        g = self.geo
        n, oh, ow = conv_pixel(b, g, row, self.pool)
        ih0, iw0 = b.sub(b.mul(oh, i64(g.sh)), i64(g.pt)), b.sub(b.mul(ow, i64(g.sw)), i64(g.pl))
        c0 = b.mul(group, i64(g.cin_g))
        if g.kh * g.kw > UNROLL_TAPS:
            with for_range(b, 0, g.kh, name="kh") as kh:
                with for_range(b, 0, g.kw, name="kw") as kw:
                    self._tap(b, x, rowbuf, az, n, c0, ih0, iw0, kh, kw)
            return
        for kh in range(g.kh):
            for kw in range(g.kw):
                self._tap(b, x, rowbuf, az, n, c0, ih0, iw0, i64(kh), i64(kw))

    def _tap(self, b, x, rowbuf, az, n, c0, ih0, iw0, kh, kw):
        """The cin_g values of one window tap: copied, or az where the tap is in the padding."""
        g = self.geo
        ih, iw = b.add(ih0, b.mul(kh, i64(g.dh))), b.add(iw0, b.mul(kw, i64(g.dw)))
        dst = gep(b, rowbuf, b.mul(b.add(b.mul(kh, i64(g.kw)), kw), i64(g.cin_g)))
        pix_in = b.add(b.mul(b.add(b.mul(n, i64(g.h)), ih), i64(g.w)), iw)

        def copy():
            copy_u8(b, b.gep(x, [b.add(b.mul(pix_in, i64(g.c)), c0)]), dst, g.cin_g, self.signed)

        if self.always_inside():
            copy()
            return
        with b.if_else(b.and_(_within(b, ih, g.h), _within(b, iw, g.w))) as (then, otherwise):
            with then:
                copy()
            with otherwise:
                _fill_byte(b, dst, g.cin_g, az)


def _within(b, i, size: int):
    return b.and_(b.icmp_signed(">=", i, i64(0)), b.icmp_signed("<", i, i64(size)))


def pack_a(b, isa: Int8Isa, source, a, group, m0, mc, kgroups: int, apack, rowsum, rowbuf, az, need_sums):
    """Rows [m0, m0 + mc) as MR-row tiles, row-major: apack[row * kgroups + g] = the A word of (row, k
    group g), rowsum[row] (0 unless need_sums: only a nonzero B zero point multiplies it); the last
    tile's rows past mc are zero. rowbuf holds rowbuf_bytes(kgroups, G) bytes, apack
    a_pack_words(rows, kgroups, G) words (a row's widening may spill into the next)."""
    G, k = isa.group, source.k
    span = rowbuf_bytes(kgroups, G)
    for t in range(k, span):   # the tail past K stays zero: it adds nothing to words or sums
        b.store(ir.Constant(I8, 0), gep(b, rowbuf, i64(t)))
    ntiles = b.sdiv(b.add(mc, i64(isa.mr - 1)), i64(isa.mr))
    with for_range(b, 0, b.mul(ntiles, i64(isa.mr)), name="a.row") as r:
        dst = gep(b, apack, b.mul(r, i64(kgroups)))
        with b.if_else(b.icmp_signed("<", r, mc)) as (live, dead):
            with live:
                source.fill(b, a, b.add(m0, r), group, rowbuf, az)
                b.store(ir.Constant(I32, 0), gep(b, rowsum, r))
                with b.if_then(need_sums):
                    b.store(_row_sum(b, rowbuf, span), gep(b, rowsum, r))
                isa.a_row(b, rowbuf, dst, span)
            with dead:
                b.store(ir.Constant(I32, 0), gep(b, rowsum, r))
                with for_range(b, 0, kgroups, name="a.zero") as g:
                    b.store(ir.Constant(I32, 0), gep(b, dst, g))


def a_pack_words(rows: int, kgroups: int, group: int) -> int:
    """Words of a packed A block of `rows` rows (with room for the last row's widening spill)."""
    return max(1, rows * kgroups) + rowbuf_bytes(kgroups, group)


def _row_sum(b, rowbuf, span: int):
    """The sum of the row buffer's bytes as u8 (span: a whole number of CHUNKs), in vectors."""
    vty = ir.VectorType(I32, CHUNK)
    acc = entry_alloca(b, vty, 1, 64)
    b.store(zero(vty), acc)

    def chunk(off):
        b.store(b.add(b.load(acc), b.zext(load_vec(b, gep(b, rowbuf, off), CHUNK), vty)), acc)

    _steps(b, span, CHUNK, chunk, "a.sum")
    fn = declare_intrinsic(b.module, "llvm.vector.reduce.add.v16i32", I32, [vty])
    return b.call(fn, [b.load(acc)])


def any_nonzero(b, bzp, count: int, per_col: bool):
    """Whether any of the B zero points is nonzero (then A's row sums are needed)."""
    if not per_col:
        return b.icmp_signed("!=", b.load(bzp), ir.Constant(I8, 0))
    seen = entry_alloca(b, I8, 1, 1)
    b.store(ir.Constant(I8, 0), seen)
    with for_range(b, 0, count, name="bz.any") as c:
        b.store(b.or_(b.load(seen), b.load(gep(b, bzp, c))), seen)
    return b.icmp_signed("!=", b.load(seen), ir.Constant(I8, 0))


def pack_b(b, isa: Int8Isa, w, ldb: int, k: int, kgroups: int, col0, nc, nc_pad, bpack, colterm, bzv,
           bzp, bz_per_col: bool, az):
    """Columns [col0, col0 + nc) of w (row stride ldb) as NR-column panels of k groups, plus the
    per-column correction terms; columns up to nc_pad are zero.

    Whole vectors of columns are loaded `group` rows at a time and interleaved in registers; rows
    past K are zeroed by a select after re-reading row K-1 (never past the matrix); a vector of
    columns that crosses nc (the last of a block) is packed byte by byte."""
    G, nr, lanes, E = isa.group, isa.panel_nr, isa.lanes, isa.b_bytes
    with for_range(b, 0, nc_pad, lanes, name="b.vec") as c:
        panel = gep(b, bpack, b.add(b.mul(b.sdiv(c, i64(nr)), i64(kgroups * isa.kstride)),
                                    b.mul(b.srem(c, i64(nr)), i64(G * E))))
        src = b.gep(w, [b.add(col0, c)])
        with b.if_else(b.icmp_signed("<=", b.add(c, i64(lanes)), nc)) as (whole, edge):
            with whole:
                with for_range(b, 0, kgroups, name="b.g") as g:
                    rows = []
                    for t in range(G):
                        kk = b.add(b.mul(g, i64(G)), i64(t))
                        v = load_vec(b, b.gep(src, [b.mul(imin(b, kk, i64(k - 1)), i64(ldb))]), lanes)
                        rows.append(b.select(b.icmp_signed("<", kk, i64(k)), v, zero(v.type)))
                    vals = isa.panel_values(b, isa.interleave(b, rows))
                    dst = gep(b, panel, b.mul(g, i64(isa.kstride)))
                    store_vec(b, vals, b.bitcast(dst, vals.type.element.as_pointer()))
            with edge:
                _pack_columns_bytewise(b, isa, w, ldb, k, kgroups, src, b.sub(nc, c), panel)
        # colsum of the packed bytes: one dot step per k group with A words of ones
        ones = ir.Constant(I32, {4: 0x01010101, 2: 0x00010001, 1: 1}[G])
        total = entry_alloca(b, ir.VectorType(I32, lanes), 1, 4)
        b.store(zero(total.type.pointee), total)
        with for_range(b, 0, kgroups, name="b.sum") as g:
            bvec = isa.load_b(b, gep(b, panel, b.mul(g, i64(isa.kstride))))
            b.store(isa.dot(b, b.load(total), ones, bvec), total)
        store_vec(b, b.load(total), gep(b, colterm, c))
    column_terms(b, k, colterm, col0, nc, nc_pad, colterm, bzv, bzp, bz_per_col, az)


def column_terms(b, k: int, colsum, col0, nc, nc_pad, colterm, bzv, bzp, bz_per_col: bool, az):
    """colterm[c] = K*az*bz[c] - az*colsum[c] and bzv[c] = bz[c] for the block's columns c < nc_pad
    (zero past nc); colsum (i32*, the block's column sums) may be colterm itself."""
    kz = b.mul(az, ir.Constant(I32, k))
    with for_range(b, 0, nc_pad, name="b.col") as c:
        live = b.icmp_signed("<", c, nc)
        col = b.add(col0, imin(b, c, b.sub(nc, i64(1))))     # dead columns re-read a live one
        bz = b.sext(b.load(b.gep(bzp, [col]) if bz_per_col else bzp), I32)
        bz = b.select(live, bz, ir.Constant(I32, 0))
        term = b.sub(b.mul(kz, bz), b.mul(az, b.load(gep(b, colsum, c))))
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
            dst = b.add(b.mul(b.sdiv(kk, i64(G)), i64(isa.panel_nr * G)), b.add(b.mul(j, i64(G)), b.srem(kk, i64(G))))
            v = b.select(real, v, ir.Constant(I8, 0))
            if isa.b_bytes == 2:   # the panel's values are 16-bit (dst counts values)
                b.store(b.sext(v, ir.IntType(16)), gep(b, b.bitcast(panel, ir.IntType(16).as_pointer()), dst))
            else:
                b.store(v, gep(b, panel, dst))
