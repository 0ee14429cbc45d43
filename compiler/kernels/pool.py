"""Pooling kernels (NHWC, vectorized over channels): max/avg forward and their gradients.

Semantics are those of ir/ops/nn.py: windows clipped to the real input ('same' average divides by
the count of real inputs), max propagates NaN like np.maximum, and the max gradient goes to the
first maximum of each window in row-major order, padding positions (value -inf) included.
Forward work is split over (image, output row); gradients over images, since windows overlap.
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from ..threads import parallel_function
from .config import vector_bits
from .geometry import Geometry
from .channels import ChannelKernel
from ..loops import I1, entry_alloca, for_range, gep, i64, intrinsic, llvm_type, splat, zero
from .matmul import ITEMSIZE

KINDS = ("max", "avg", "max_grad", "avg_grad")
INTEGER_MAX = {"i8": "llvm.smax", "u8": "llvm.umax"}   # 8-bit max pooling (exact; forward only)
# Window element-operations per thread below which another thread is not worth waking.
GRAIN = 1 << 18


def pool_function(module: ir.Module, features: str, dtype: str, kind: str, geo: Geometry) -> ir.Function:
    """Get or emit the kernel. Arguments (then i64 batch, i64 nthreads):
    max/avg: (x, y); max_grad: (x, dy, dx); avg_grad: (dy, dx)."""
    if kind not in KINDS:
        raise ValueError(f"pooling kind must be one of {KINDS}, got {kind!r}")
    elem = llvm_type(dtype)
    if dtype in INTEGER_MAX and kind != "max":
        raise ValueError(f"pooling kind {kind!r} needs a float dtype, got {dtype}")
    lanes = vector_bits(features) // (8 * ITEMSIZE[dtype])
    if dtype in INTEGER_MAX:   # few channels of bytes: a vector no wider than they need (>= 16 lanes)
        lanes = min(lanes, max(16, 1 << (geo.c - 1).bit_length()))
    name = f"kc_pool_{kind}_" + hashlib.sha1(repr((dtype, geo, lanes)).encode()).hexdigest()[:12]
    em = _Pool(elem, lanes, geo, dtype)
    nptr = 3 if kind == "max_grad" else 2
    work = lambda b, batch: b.mul(batch, i64(geo.oh * geo.ow * geo.c * geo.kh * geo.kw))
    ptrs = [elem.as_pointer()] * nptr
    if kind in ("max", "avg"):
        rows = lambda b, batch: b.mul(batch, i64(geo.oh))
        return parallel_function(module, name, ptrs, rows, getattr(em, kind), work, GRAIN)
    return parallel_function(module, name, ptrs, lambda b, batch: batch, getattr(em, kind), work, GRAIN)


class _Pool(ChannelKernel):
    def __init__(self, elem, lanes, geo: Geometry, dtype: str = "f32"):
        super().__init__(elem, lanes, geo)
        self.dtype = dtype

    def maximum(self, b, x, y):
        if self.dtype in INTEGER_MAX:
            return intrinsic(b, INTEGER_MAX[self.dtype], [x, y])
        return super().maximum(b, x, y)

    def const(self, b, value):
        """Constants of the float kernels; -inf (max's start) is an integer type's minimum."""
        if self.dtype in INTEGER_MAX and value == float("-inf"):
            return splat(b, ir.Constant(self.elem, -128 if self.dtype == "i8" else 0), self.lanes)
        return super().const(b, value)

    # -- forward ---------------------------------------------------------------------------
    def max(self, b, task, ptrs, batch):
        self._forward(b, task, ptrs, "max")

    def avg(self, b, task, ptrs, batch):
        self._forward(b, task, ptrs, "avg")

    def _forward(self, b, task, ptrs, kind):
        g = self.g
        n, oh = b.sdiv(task, i64(g.oh)), b.srem(task, i64(g.oh))
        x, y = self.image(b, ptrs[0], n, g.h, g.w), self.image(b, ptrs[1], n, g.oh, g.ow)
        with for_range(b, 0, g.ow, 1, "ow") as ow:
            h0, w0, kh, kw = self.window(b, oh, ow)
            out = gep(b, y, b.mul(b.add(b.mul(oh, i64(g.ow)), ow), i64(g.c)))

            def body(c, mask):
                acc = self._reduce(b, x, h0, w0, kh, kw, c, mask, kind)
                if kind == "avg":
                    count = b.mul(b.sub(kh[1], kh[0]), b.sub(kw[1], kw[0]))
                    acc = b.fdiv(acc, splat(b, b.sitofp(count, self.elem), self.lanes))
                self.store(b, acc, gep(b, out, c), mask)
            self.channels(b, body)

    def _reduce(self, b, x, h0, w0, kh, kw, c, mask, kind):
        """max or sum of the window's real positions, as a loop-carried vector."""
        init = self.const(b, float("-inf")) if kind == "max" else zero(self.vty)
        acc = entry_alloca(b, self.vty, 1)
        b.store(init, acc)
        with for_range(b, kh[0], kh[1], 1, "kh") as i:
            with for_range(b, kw[0], kw[1], 1, "kw") as j:
                v = self.load(b, self.pixel(b, x, b.add(h0, i), b.add(w0, j), c), mask)
                cur = b.load(acc)
                b.store(self.maximum(b, cur, v) if kind == "max" else b.fadd(cur, v), acc)
        return b.load(acc)

    # -- gradients -------------------------------------------------------------------------
    def _zero_image(self, b, dx):
        g = self.g
        with for_range(b, 0, g.h * g.w * g.c, 1, "z") as i:
            b.store(zero(self.elem), gep(b, dx, i))

    def max_grad(self, b, n, ptrs, batch):
        g = self.g
        x, dy, dx = (self.image(b, p, n, *hw) for p, hw in zip(ptrs, ((g.h, g.w), (g.oh, g.ow), (g.h, g.w))))
        self._zero_image(b, dx)
        with for_range(b, 0, g.oh, 1, "oh") as oh:
            with for_range(b, 0, g.ow, 1, "ow") as ow:
                h0, w0, kh, kw = self.window(b, oh, ow)
                grad = gep(b, dy, b.mul(b.add(b.mul(oh, i64(g.ow)), ow), i64(g.c)))

                def body(c, mask):
                    top = self._reduce(b, x, h0, w0, kh, kw, c, mask, "max")
                    self._route(b, x, dx, h0, w0, c, mask, top, self.load(b, gep(b, grad, c), mask))
                self.channels(b, body)

    def _route(self, b, x, dx, h0, w0, c, mask, top, grad):
        """Scan the whole window in row-major order; the first position equal to the max takes grad."""
        g = self.g
        bty = ir.VectorType(I1, self.lanes)
        taken = entry_alloca(b, bty, 1, 16)
        b.store(ir.Constant(bty, [0] * self.lanes), taken)
        with for_range(b, 0, g.kh, 1, "rh") as i:
            with for_range(b, 0, g.kw, 1, "rw") as j:
                h, w = b.add(h0, i), b.add(w0, j)
                real = b.and_(b.icmp_unsigned("<", h, i64(g.h)), b.icmp_unsigned("<", w, i64(g.w)))
                with b.if_else(real) as (then, padding):
                    with then:
                        src = self.pixel(b, x, h, w, c)
                        hit = b.and_(b.fcmp_ordered("==", self.load(b, src, mask), top), b.not_(b.load(taken)))
                        dst = self.pixel(b, dx, h, w, c)
                        upd = b.fadd(self.load(b, dst, mask), b.select(hit, grad, zero(self.vty)))
                        self.store(b, upd, dst, mask)
                        b.store(b.or_(b.load(taken), hit), taken)
                    with padding:  # padding holds -inf: it is "the first max" only of an all -inf window
                        hit = b.fcmp_ordered("==", self.const(b, float("-inf")), top)
                        b.store(b.or_(b.load(taken), hit), taken)

    def avg_grad(self, b, n, ptrs, batch):
        g = self.g
        dy, dx = self.image(b, ptrs[0], n, g.oh, g.ow), self.image(b, ptrs[1], n, g.h, g.w)
        self._zero_image(b, dx)
        with for_range(b, 0, g.oh, 1, "oh") as oh:
            with for_range(b, 0, g.ow, 1, "ow") as ow:
                h0, w0, kh, kw = self.window(b, oh, ow)
                count = b.sitofp(b.mul(b.sub(kh[1], kh[0]), b.sub(kw[1], kw[0])), self.elem)
                grad = gep(b, dy, b.mul(b.add(b.mul(oh, i64(g.ow)), ow), i64(g.c)))

                def body(c, mask):
                    share = b.fdiv(self.load(b, gep(b, grad, c), mask), splat(b, count, self.lanes))
                    with for_range(b, kh[0], kh[1], 1, "gh") as i:
                        with for_range(b, kw[0], kw[1], 1, "gw") as j:
                            dst = self.pixel(b, dx, b.add(h0, i), b.add(w0, j), c)
                            self.store(b, b.fadd(self.load(b, dst, mask), share), dst, mask)
                self.channels(b, body)
