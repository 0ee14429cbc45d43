"""Direct convolution for a tiny contraction (first layers: K = kh*kw*cin of 9 or 27).

With K that small a GEMM spends its time packing windows and entering micro-kernels, so each
output pixel is computed in place instead: the output channels in vectors, one broadcast input
value times one weight vector per tap and input channel, the epilogue on the accumulators.
Work is split over (image, output row).
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from ..threads import parallel_function
from .channels import ChannelKernel, tap_range
from .config import vector_bits
from .epilogue import BiasActivation, Epilogue
from .geometry import Geometry
from ..loops import entry_alloca, fma, for_range, gep, i64, lane_mask, llvm_type, splat, zero
from .matmul import ITEMSIZE

MAX_K = 32         # largest kh*kw*cin computed directly
MAX_VECTORS = 8    # output-channel vectors held in registers per pixel
GRAIN = 1 << 20    # multiply-adds per thread below which another thread is not worth waking


def use_direct(geo: Geometry, lanes: int) -> bool:
    return (geo.groups == 1 and geo.kh * geo.kw * geo.c <= MAX_K
            and -(-geo.cout // lanes) <= MAX_VECTORS)


def direct_function(module: ir.Module, features: str, dtype: str, geo: Geometry,
                    epi: Epilogue | None = None) -> ir.Function:
    """Get or emit `void f(T* x, T* w, T* y, T* epilogue_ptrs..., i64 batch, i64 nthreads)`."""
    epi = epi or BiasActivation()
    elem = llvm_type(dtype)
    lanes = vector_bits(features) // (8 * ITEMSIZE[dtype])
    if not use_direct(geo, lanes):
        raise ValueError(f"direct convolution needs groups=1 and kh*kw*cin <= {MAX_K}, got {geo}")
    name = "kc_conv_direct_" + hashlib.sha1(repr((dtype, geo, lanes, epi.ident)).encode()).hexdigest()[:12]
    em = _Direct(elem, lanes, geo, epi)
    rows = lambda b, batch: b.mul(batch, i64(geo.oh))
    work = lambda b, batch: b.mul(batch, i64(geo.oh * geo.ow * geo.cout * geo.kh * geo.kw * geo.c))
    return parallel_function(module, name, [elem.as_pointer()] * (3 + epi.nptrs), rows, em.row, work, GRAIN)


class _Direct(ChannelKernel):
    def __init__(self, elem, lanes, geo, epi):
        super().__init__(elem, lanes, geo)
        self.epi = epi
        self.nv = -(-geo.cout // lanes)

    def row(self, b, task, ptrs, batch):
        g = self.g
        n, oh = b.sdiv(task, i64(g.oh)), b.srem(task, i64(g.oh))
        x, w = self.image(b, ptrs[0], n, g.h, g.w), ptrs[1]
        masks = [None if (v + 1) * self.lanes <= g.cout else lane_mask(b, i64(g.cout - v * self.lanes), self.lanes)
                 for v in range(self.nv)]
        accs = [entry_alloca(b, self.vty, 1) for _ in range(self.nv)]
        h0 = b.sub(b.mul(oh, i64(g.sh)), i64(g.pt))
        kh = tap_range(b, h0, g.h, g.kh, g.dh)
        with for_range(b, 0, g.ow, 1, "ow") as ow:
            w0 = b.sub(b.mul(ow, i64(g.sw)), i64(g.pl))
            for acc in accs:
                b.store(zero(self.vty), acc)
            self._taps(b, x, w, h0, w0, kh, tap_range(b, w0, g.w, g.kw, g.dw), accs, masks)
            pixel = b.add(b.mul(task, i64(g.ow)), ow)
            out = gep(b, ptrs[2], b.mul(pixel, i64(g.cout)))
            kargs = self.epi.kernel_args(b, ptrs[3:], self.elem)
            for v, (acc, mask) in enumerate(zip(accs, masks)):
                col = i64(v * self.lanes)
                value = self.epi.apply(b, b.load(acc), pixel, col, kargs, mask)
                self.store(b, value, gep(b, out, col), mask)

    def _taps(self, b, x, w, h0, w0, kh, kw, accs, masks):
        g = self.g
        with for_range(b, kh[0], kh[1], 1, "kh") as i:
            with for_range(b, kw[0], kw[1], 1, "kw") as j:
                src = self.pixel(b, x, b.add(h0, b.mul(i, i64(g.dh))), b.add(w0, b.mul(j, i64(g.dw))), i64(0))
                taps = gep(b, w, b.mul(b.add(b.mul(i, i64(g.kw)), j), i64(g.c * g.cout)))
                for ci in range(g.c):
                    xv = splat(b, b.load(gep(b, src, i64(ci))), self.lanes)
                    row = gep(b, taps, i64(ci * g.cout))
                    for v, (acc, mask) in enumerate(zip(accs, masks)):
                        wv = self.load(b, gep(b, row, i64(v * self.lanes)), mask)
                        b.store(fma(b, xv, wv, b.load(acc)), acc)
