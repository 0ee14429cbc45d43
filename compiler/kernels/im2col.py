"""Implicit-GEMM operands of convolutions: windows of an NHWC tensor gathered straight into packed panels.

No im2col matrix is ever materialized: the A packer reads element (i, k) from the source tensor at
spatial position (h_row(i) + h_col(k), w_row(i) + w_col(k)) and channel offset off_row(i) + off_col(k),
writing 0 where the position falls into padding.  A `stride` divisor turns the same gather into the
transposed convolution of the input gradient: position t maps to t / stride when it divides exactly.
"""
from __future__ import annotations

from ..loops import (I64, entry_alloca, for_range, for_steps, gep, i64, imin, lane_mask, load_vec, masked_load,
                     masked_store, splat, store_vec, zero)


class Im2colA:
    """Packed-only A operand. row_fn(b, i, g) and col_fn(b, k, g) -> (h, w, element offset).

    layout "rows" (forward, input gradient): panel row r holds its kc values contiguously (the
    micro-kernel reads rsa=kc, csa=1) and is gathered in runs of `run` consecutive channels, which
    are contiguous in the source.  layout "cols" (filter gradient, whose rows are channels): the
    usual panel[k*MR + r], filled row index innermost, again reading consecutive channels.
    """

    packed_only = True

    def __init__(self, src_hw, src_c, row_fn, col_fn, divisor=(1, 1), layout="cols", run=1, lanes=1,
                 taps=None, max_panels=1):
        (self.sh_, self.sw_), self.c = src_hw, src_c
        self.row_fn, self.col_fn, self.divisor = row_fn, col_fn, divisor
        self.layout, self.run, self.lanes = layout, run, lanes
        # (kh, kw, kc_block): when the whole K = kh*kw*run fits one KC block, rows are gathered
        # tap by tap with no index decomposition (first layers: K = 9 or 25)
        self.taps = taps
        self.max_panels = max_panels   # bound on A panels per block (the aligned "cols" packing)

    def packed_strides(self, kc, mr_tile):
        return (kc, i64(1)) if self.layout == "rows" else (i64(1), i64(mr_tile))

    def pack(self, b, ptr, g, dst, m0, mc, k0, kc, mr_tile):
        if self.layout == "rows" and self.taps and self.taps[0] * self.taps[1] * self.run <= self.taps[2]:
            self._pack_rows_by_tap(b, ptr, g, dst, m0, mc)
        elif self.layout == "rows":
            self._pack_rows(b, ptr, g, dst, m0, mc, k0, kc)
        else:
            self._pack_cols(b, ptr, g, dst, m0, mc, k0, kc, mr_tile)

    def _pack_rows(self, b, ptr, g, dst, m0, mc, k0, kc):
        end = b.add(k0, kc)
        with for_range(b, 0, mc, 1, "ic.r") as r:
            hr, wr, offr = self.row_fn(b, b.add(m0, r), g)
            out = gep(b, dst, b.mul(r, kc))

            def segment(k):   # the rest of k's channel run, clipped to the block
                hk, wk, ok = self.col_fn(b, k, g)
                seg = imin(b, b.sub(i64(self.run), b.srem(k, i64(self.run))), b.sub(end, k))
                valid, idx = self._source(b, b.add(hr, hk), b.add(wr, wk), b.add(offr, ok))
                self._copy_run(b, gep(b, out, b.sub(k, k0)), ptr, idx, seg, valid)
                return seg
            for_steps(b, k0, end, segment, "ic.seg")

    def _pack_rows_by_tap(self, b, ptr, g, dst, m0, mc):
        kh_n, kw_n, _ = self.taps
        k = kh_n * kw_n * self.run
        with for_range(b, 0, mc, 1, "it.r") as r:
            hr, wr, offr = self.row_fn(b, b.add(m0, r), g)
            out = gep(b, dst, b.mul(r, i64(k)))
            with for_range(b, 0, kh_n, 1, "it.h") as kh:
                hk, _, _ = self.col_fn(b, b.mul(kh, i64(kw_n * self.run)), g)
                ok_h, h = _position(b, b.add(hr, hk), self.sh_, self.divisor[0])
                with for_range(b, 0, kw_n, 1, "it.w") as kw:
                    _, wk, _ = self.col_fn(b, b.mul(kw, i64(self.run)), g)
                    ok_w, w = _position(b, b.add(wr, wk), self.sw_, self.divisor[1])
                    idx = b.add(offr, b.mul(b.add(b.mul(h, i64(self.sw_)), w), i64(self.c)))
                    tap_out = gep(b, out, b.mul(b.add(b.mul(kh, i64(kw_n)), kw), i64(self.run)))
                    if self.run == 1:
                        valid = b.and_(ok_h, ok_w)
                        v = b.load(b.select(valid, gep(b, ptr, idx), ptr))
                        b.store(b.select(valid, v, zero(v.type)), tap_out)
                    else:
                        self._copy_run(b, tap_out, ptr, idx, i64(self.run), b.and_(ok_h, ok_w))

    def _copy_run(self, b, dst, src, idx, count, valid):
        """dst[0:count] = src[idx : idx + count] if valid else 0 (channels are contiguous in the source)."""
        elem = dst.type.pointee
        with b.if_else(valid) as (then, otherwise):
            with then:
                base = gep(b, src, idx)
                if self.run >= self.lanes > 1:
                    copy_vectors(b, dst, base, count, self.lanes)
                else:
                    with for_range(b, 0, count, 1, "ic.c") as t:
                        b.store(b.load(gep(b, base, t)), gep(b, dst, t))
            with otherwise:
                with for_range(b, 0, count, 1, "ic.z") as t:
                    b.store(zero(elem), gep(b, dst, t))

    def _pack_cols(self, b, ptr, g, dst, m0, mc, k0, kc, mr_tile):
        if self.run % mr_tile == 0:
            self._pack_cols_aligned(b, ptr, g, dst, m0, mc, k0, kc, mr_tile)
            return
        rows_h, rows_w, rows_off = (entry_alloca(b, I64, mr_tile, 8) for _ in range(3))
        with for_range(b, 0, mc, mr_tile, "ic.i") as ip:
            rows = imin(b, mr_tile, b.sub(mc, ip))
            with for_range(b, 0, rows, 1, "ic.r") as r:
                for arr, v in zip((rows_h, rows_w, rows_off), self.row_fn(b, b.add(m0, b.add(ip, r)), g)):
                    b.store(v, gep(b, arr, r))
            panel = gep(b, dst, b.mul(ip, kc))
            with for_range(b, 0, kc, 1, "ic.k") as k:
                hk, wk, ok = self.col_fn(b, b.add(k0, k), g)
                out = gep(b, panel, b.mul(k, i64(mr_tile)))
                # element by element, branch-free (measured faster here than masked channel-run copies)
                with for_range(b, 0, rows, 1, "ic.rk") as r:
                    h = b.add(b.load(gep(b, rows_h, r)), hk)
                    w = b.add(b.load(gep(b, rows_w, r)), wk)
                    off = b.add(b.load(gep(b, rows_off, r)), ok)
                    b.store(self._element(b, ptr, h, w, off), gep(b, out, r))

    def _pack_cols_aligned(self, b, ptr, g, dst, m0, mc, k0, kc, mr_tile):
        """Each panel's rows are mr_tile consecutive channels of one tap: one vector per column.

        k outer, panels inner, so k's window position is decomposed once for all panels."""
        arrays = [entry_alloca(b, I64, self.max_panels, 8) for _ in range(3)]   # per panel: h, w, offset
        npanels = b.sdiv(b.add(mc, i64(mr_tile - 1)), i64(mr_tile))
        with for_range(b, 0, npanels, 1, "ia.p") as p:
            for arr, v in zip(arrays, self.row_fn(b, b.add(m0, b.mul(p, i64(mr_tile))), g)):
                b.store(v, gep(b, arr, p))
        with for_range(b, 0, kc, 1, "ia.k") as k:
            hk, wk, ok = self.col_fn(b, b.add(k0, k), g)
            column = gep(b, dst, b.mul(k, i64(mr_tile)))
            with for_range(b, 0, npanels, 1, "ia.i") as p:
                h, w, off = (b.load(gep(b, arr, p)) for arr in arrays)
                valid, idx = self._source(b, b.add(h, hk), b.add(w, wk), b.add(off, ok))
                rows = imin(b, mr_tile, b.sub(mc, b.mul(p, i64(mr_tile))))
                on = b.and_(lane_mask(b, rows, mr_tile), splat(b, valid, mr_tile))
                v = masked_load(b, b.select(valid, gep(b, ptr, idx), ptr), on, mr_tile)
                store_vec(b, v, gep(b, column, b.mul(p, b.mul(i64(mr_tile), kc))))

    def _source(self, b, h, w, off):
        """(position is real, element index in the source tensor)."""
        ok_h, h = _position(b, h, self.sh_, self.divisor[0])
        ok_w, w = _position(b, w, self.sw_, self.divisor[1])
        return b.and_(ok_h, ok_w), b.add(off, b.mul(b.add(b.mul(h, i64(self.sw_)), w), i64(self.c)))

    def _element(self, b, ptr, h, w, off):
        valid, idx = self._source(b, h, w, off)
        # padding reads nothing: the address is replaced by the base before loading
        v = b.load(b.select(valid, gep(b, ptr, idx), ptr))
        return b.select(valid, v, zero(v.type))


def copy_vectors(b, dst, src, count, lanes):
    """dst[0:count] = src[0:count] in vectors, the tail with one masked load/store."""
    full = b.sub(count, b.srem(count, i64(lanes)))
    with for_range(b, 0, full, lanes, "cv") as t:
        store_vec(b, load_vec(b, gep(b, src, t), lanes), gep(b, dst, t))
    with b.if_then(b.icmp_signed("<", full, count)):
        mask = lane_mask(b, b.sub(count, full), lanes)
        masked_store(b, masked_load(b, gep(b, src, full), mask, lanes), gep(b, dst, full), mask)


def _position(b, t, size, divisor):
    """(t is a real row/column, its index): 0 <= t < size*divisor and divisor | t."""
    inside = b.icmp_unsigned("<", t, i64(size * divisor))
    if divisor == 1:
        return inside, t
    exact = b.icmp_unsigned("==", b.urem(t, i64(divisor)), i64(0))
    return b.and_(inside, exact), b.udiv(t, i64(divisor))


def split3(b, i, d1: int, d2: int):
    """i -> (i // (d1*d2), (i // d2) % d1, i % d2) for static d1, d2."""
    return b.sdiv(i, i64(d1 * d2)), b.srem(b.sdiv(i, i64(d2)), i64(d1)), b.srem(i, i64(d2))


class InputGradB:
    """B of the input gradient: B[(kh, kw, co), ci] = w[kh, kw, ci, g*cout_g + co], packed by columns."""

    direct_ok = False

    def __init__(self, cin_g: int, cout: int, cout_g: int):
        self.cin_g, self.cout, self.cout_g = cin_g, cout, cout_g

    def pack(self, b, ptr, g, dst, k0, kc, n0, nc, nr_tile):
        base = gep(b, ptr, b.mul(g, i64(self.cout_g)))
        with for_range(b, 0, nc, nr_tile, "gb.j") as jp:
            cols = imin(b, nr_tile, b.sub(nc, jp))
            panel = gep(b, dst, b.mul(jp, kc))
            with for_range(b, 0, cols, 1, "gb.c") as j:
                col = gep(b, base, b.mul(b.add(n0, b.add(jp, j)), i64(self.cout)))
                with for_range(b, 0, kc, 1, "gb.k") as k:
                    kk = b.add(k0, k)
                    tap, co = b.sdiv(kk, i64(self.cout_g)), b.srem(kk, i64(self.cout_g))
                    src = gep(b, col, b.add(b.mul(tap, i64(self.cin_g * self.cout)), co))
                    b.store(b.load(src), gep(b, panel, b.add(b.mul(k, i64(nr_tile)), j)))
