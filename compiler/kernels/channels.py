"""Loops over NHWC pixels with the channels in vectors: the base of the pooling and depthwise kernels."""
from __future__ import annotations

from llvmlite import ir

from .geometry import Geometry
from ..loops import (ceil_div, for_range, gep, i64, imax, imin, intrinsic, lane_mask, load_vec, masked_load,
                     masked_store, splat, store_vec)


def tap_range(b: ir.IRBuilder, start, size: int, k: int, d: int):
    """[first, end) of taps t in [0, k) with 0 <= start + t*d < size."""
    first = b.select(b.icmp_signed("<", start, i64(0)), ceil_div(b, b.neg(start), d), i64(0))
    return first, imin(b, k, imax(b, ceil_div(b, b.sub(i64(size), start), d), 0))


class ChannelKernel:
    """Helpers for kernels whose innermost loop runs over the channels of one pixel."""

    def __init__(self, elem, lanes, geo: Geometry):
        self.elem, self.lanes, self.g = elem, lanes, geo
        self.vty = ir.VectorType(elem, lanes)

    def channels(self, b, body):
        """body(c, mask) over channel vectors: full vectors, then one masked tail if C % lanes."""
        full = self.g.c - self.g.c % self.lanes
        with for_range(b, 0, full, self.lanes, "c") as c:
            body(c, None)
        if full < self.g.c:
            body(i64(full), lane_mask(b, i64(self.g.c - full), self.lanes))

    def load(self, b, ptr, mask):
        return load_vec(b, ptr, self.lanes) if mask is None else masked_load(b, ptr, mask, self.lanes)

    def store(self, b, v, ptr, mask):
        store_vec(b, v, ptr) if mask is None else masked_store(b, v, ptr, mask)

    def pixel(self, b, base, h, w, c):
        """&x[n, h, w, c] given &x[n, 0, 0, 0]."""
        return gep(b, base, b.add(b.mul(b.add(b.mul(h, i64(self.g.w)), w), i64(self.g.c)), c))

    def window(self, b, oh, ow):
        """(first row, first col, kh range, kw range): the taps that fall on the real input."""
        g = self.g
        h0, w0 = b.sub(b.mul(oh, i64(g.sh)), i64(g.pt)), b.sub(b.mul(ow, i64(g.sw)), i64(g.pl))
        return h0, w0, tap_range(b, h0, g.h, g.kh, g.dh), tap_range(b, w0, g.w, g.kw, g.dw)

    def maximum(self, b, x, y):
        return intrinsic(b, "llvm.maximum", [x, y])

    def const(self, b, value):
        return splat(b, ir.Constant(self.elem, value), self.lanes)

    def image(self, b, ptr, n, h, w):
        return gep(b, ptr, b.mul(n, i64(h * w * self.g.c)))
