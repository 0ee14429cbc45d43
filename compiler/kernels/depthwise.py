"""Depthwise convolution (one input channel per group, one output per group) computed directly.

y[n, oh, ow, c] = sum over real taps of x[n, oh*sh + kh*dh - pt, ow*sw + kw*dw - pl, c] * w[kh, kw, 0, c],
with the channels in vectors, so no GEMM wastes lanes on a one-column product.  Work is split
over (image, output row); the epilogue (bias, relu) runs on the accumulator before the store.
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from ..threads import parallel_function
from .channels import ChannelKernel
from .config import vector_bits
from .epilogue import BiasActivation, Epilogue
from .geometry import Geometry
from ..loops import entry_alloca, fma, for_range, gep, i64, llvm_type, zero
from .matmul import ITEMSIZE

# multiply-adds per thread below which another thread is not worth waking
GRAIN = 1 << 20


def is_depthwise(geo: Geometry) -> bool:
    return geo.groups > 1 and geo.cin_g == 1 and geo.cout_g == 1


def depthwise_function(module: ir.Module, features: str, dtype: str, geo: Geometry,
                       epi: Epilogue | None = None) -> ir.Function:
    """Get or emit `void f(T* x, T* w, T* y, T* epilogue_ptrs..., i64 batch, i64 nthreads)`."""
    if not is_depthwise(geo):
        raise ValueError(f"depthwise kernel needs one channel per group, got {geo}")
    epi = epi or BiasActivation()
    elem = llvm_type(dtype)
    lanes = vector_bits(features) // (8 * ITEMSIZE[dtype])
    name = "kc_depthwise_" + hashlib.sha1(repr((dtype, geo, lanes, epi.ident)).encode()).hexdigest()[:12]
    em = _Depthwise(elem, lanes, geo, epi)
    rows = lambda b, batch: b.mul(batch, i64(geo.oh))
    work = lambda b, batch: b.mul(batch, i64(geo.oh * geo.ow * geo.c * geo.kh * geo.kw))
    return parallel_function(module, name, [elem.as_pointer()] * (3 + epi.nptrs), rows, em.row, work, GRAIN)


class _Depthwise(ChannelKernel):
    def __init__(self, elem, lanes, geo, epi):
        super().__init__(elem, lanes, geo)
        self.epi = epi

    def row(self, b, task, ptrs, batch):
        g = self.g
        n, oh = b.sdiv(task, i64(g.oh)), b.srem(task, i64(g.oh))
        x, w, y = self.image(b, ptrs[0], n, g.h, g.w), ptrs[1], self.image(b, ptrs[2], n, g.oh, g.ow)
        with for_range(b, 0, g.ow, 1, "ow") as ow:
            h0, w0, kh, kw = self.window(b, oh, ow)
            pixel = b.add(b.mul(task, i64(g.ow)), ow)
            out = gep(b, y, b.mul(b.add(b.mul(oh, i64(g.ow)), ow), i64(g.c)))

            def body(c, mask):
                acc = self._taps(b, x, w, h0, w0, kh, kw, c, mask)
                acc = self.epi.apply(b, acc, pixel, c, self.epi.kernel_args(b, ptrs[3:], self.elem), mask)
                self.store(b, acc, gep(b, out, c), mask)
            self.channels(b, body)

    def _taps(self, b, x, w, h0, w0, kh, kw, c, mask):
        g = self.g
        acc = entry_alloca(b, self.vty, 1)
        b.store(zero(self.vty), acc)
        with for_range(b, kh[0], kh[1], 1, "kh") as i:
            with for_range(b, kw[0], kw[1], 1, "kw") as j:
                src = self.pixel(b, x, b.add(h0, b.mul(i, i64(g.dh))), b.add(w0, b.mul(j, i64(g.dw))), c)
                tap = gep(b, w, b.add(b.mul(b.add(b.mul(i, i64(g.kw)), j), i64(g.c)), c))
                b.store(fma(b, self.load(b, src, mask), self.load(b, tap, mask), b.load(acc)), acc)
        return b.load(acc)
