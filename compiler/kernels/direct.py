"""Direct convolution for a tiny contraction (first layers: K = kh*kw*cin of 9 or 27).

With K that small a GEMM spends its time packing windows and entering micro-kernels, so each
output pixel is computed in place instead: the output channels in vectors, one broadcast input
value times one weight vector per tap and input channel, the epilogue on the accumulators; pixels
whose window lies inside the input go in blocks of neighbours sharing each weight load (pixel_blocks).
Work is split over (image, output row).
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from ..threads import parallel_function
from .channels import ChannelKernel, tap_range
from .config import vector_bits, vector_registers
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
    em = _Direct(elem, lanes, geo, epi, vector_registers(features))
    rows = lambda b, batch: b.mul(batch, i64(geo.oh))
    work = lambda b, batch: b.mul(batch, i64(geo.oh * geo.ow * geo.cout * geo.kh * geo.kw * geo.c))
    return parallel_function(module, name, [elem.as_pointer()] * (3 + epi.nptrs), rows, em.row, work, GRAIN)


def pixel_blocks(geo: Geometry, nv: int, registers: int, multiple: int = 1) -> list:
    """[(first column, P, count)]: output columns first .. first + count*P - 1 run in blocks of P pixels.

    One pixel alone accumulates nv chains of kh*kw*cin dependent FMAs: latency-bound at about half
    the FMA rate (the first layer's 26x26x32 output ran at 43 % of peak). A block of P neighbouring
    pixels of one row shares each weight vector across P independent accumulator sets. Blocks cover
    the columns whose whole window row lies inside the input (no padding checks): blocks of P (at
    most ~5/8 of the registers as accumulators: more spills once LLVM hoists the broadcasts), then one
    block of the rest. `multiple`: every block starts at a multiple of it and spans a multiple of it
    (the fused pool's windows, conv_pool.py; the columns left over go one by one)."""
    g, m = geo, multiple
    first = -(-g.pl // g.sw)                                # first column with its window inside
    first = -(-first // m) * m
    last = (g.w - 1 - (g.kw - 1) * g.dw + g.pl) // g.sw    # last column with its window inside
    span = max(0, min(g.ow - 1, last) - first + 1) // m     # in units of m columns
    pmax = min(14, registers * 5 // 8 // nv) // m
    if span * m < 2 or pmax * m < 2:
        return []
    p = -(-span // -(-span // pmax))
    out = [(first, p * m, span // p)]
    if span % p:
        out.append((first + p * m * (span // p), span % p * m, 1))
    return out


class _Direct(ChannelKernel):
    def __init__(self, elem, lanes, geo, epi, registers):
        super().__init__(elem, lanes, geo)
        self.epi = epi
        self.nv = -(-geo.cout // lanes)
        self.blocks = pixel_blocks(geo, self.nv, registers)

    def row(self, b, task, ptrs, batch):
        g = self.g
        n, oh = b.sdiv(task, i64(g.oh)), b.srem(task, i64(g.oh))
        x, w = self.image(b, ptrs[0], n, g.h, g.w), ptrs[1]
        masks = [None if (v + 1) * self.lanes <= g.cout else lane_mask(b, i64(g.cout - v * self.lanes), self.lanes)
                 for v in range(self.nv)]
        h0 = b.sub(b.mul(oh, i64(g.sh)), i64(g.pt))
        kh = tap_range(b, h0, g.h, g.kh, g.dh)
        blocks = self.blocks or [(0, 1, 0)]
        accs = [entry_alloca(b, self.vty, 1) for _ in range(self.nv * max(p for _, p, _ in blocks))]
        kargs = self.epi.kernel_args(b, ptrs[3:], self.elem)
        ctx = (task, ptrs, x, w, h0, kh, masks, kargs)
        with for_range(b, 0, blocks[0][0], 1, "ow.lo") as ow:
            self._pixels(b, ow, 1, accs, ctx, inside=False)
        for first, p, count in blocks:
            with for_range(b, first, first + p * count, p, "ow.blk") as ow:
                self._pixels(b, ow, p, accs, ctx, inside=True)
        first, p, count = blocks[-1]
        with for_range(b, first + p * count, g.ow, 1, "ow.hi") as ow:
            self._pixels(b, ow, 1, accs, ctx, inside=False)

    def _pixels(self, b, ow, p, accs, ctx, inside):
        """Output pixels ow .. ow+p-1 of one row: accumulate every tap, apply the epilogue, store."""
        g = self.g
        task, ptrs, x, w, h0, kh, masks, kargs = ctx
        sets = [accs[q * self.nv:(q + 1) * self.nv] for q in range(p)]
        w0 = b.sub(b.mul(ow, i64(g.sw)), i64(g.pl))
        for acc in accs[:p * self.nv]:
            b.store(zero(self.vty), acc)
        kw = (i64(0), i64(g.kw)) if inside else tap_range(b, w0, g.w, g.kw, g.dw)
        self._taps(b, x, w, h0, w0, kh, kw, sets, masks, unroll_kw=inside)
        self._finish_block(b, task, ow, ptrs, sets, masks, kargs)

    def _finish_block(self, b, task, ow, ptrs, sets, masks, kargs):
        """The epilogue on pixels ow .. ow+len(sets)-1, stored (conv_pool.py pools a block's windows)."""
        for q, qaccs in enumerate(sets):
            self._finish(b, task, b.add(ow, i64(q)), ptrs, qaccs, masks, kargs)

    def _finish(self, b, task, ow, ptrs, accs, masks, kargs):
        """The epilogue on output pixel (task, ow)'s accumulators, stored (kernels/conv_pool.py pools them)."""
        g = self.g
        pixel = b.add(b.mul(task, i64(g.ow)), ow)
        out = gep(b, ptrs[2], b.mul(pixel, i64(g.cout)))
        for v, (acc, mask) in enumerate(zip(accs, masks)):
            col = i64(v * self.lanes)
            value = self.epi.apply(b, b.load(acc), pixel, col, kargs, mask)
            self.store(b, value, gep(b, out, col), mask)

    def _taps(self, b, x, w, h0, w0, kh, kw, sets, masks, unroll_kw):
        g = self.g
        with for_range(b, kh[0], kh[1], 1, "kh") as i:
            h = b.add(h0, b.mul(i, i64(g.dh)))
            if unroll_kw:   # the whole window row is inside: static taps
                for j in range(g.kw):
                    self._tap(b, x, w, h, w0, i, i64(j), sets, masks)
            else:
                with for_range(b, kw[0], kw[1], 1, "kw") as j:
                    self._tap(b, x, w, h, w0, i, j, sets, masks)

    def _tap(self, b, x, w, h, w0, i, j, sets, masks):
        """One (kh, kw) tap over every input channel: each weight vector is loaded once for the block."""
        g = self.g
        taps = gep(b, w, b.mul(b.add(b.mul(i, i64(g.kw)), j), i64(g.c * g.cout)))
        col = b.add(w0, b.mul(j, i64(g.dw)))
        srcs = [self.pixel(b, x, h, b.add(col, i64(q * g.sw)), i64(0)) for q in range(len(sets))]
        for ci in range(g.c):
            row = gep(b, taps, i64(ci * g.cout))
            wvs = [self.load(b, gep(b, row, i64(v * self.lanes)), mask) for v, mask in enumerate(masks)]
            for src, accs in zip(srcs, sets):
                xv = splat(b, b.load(gep(b, src, i64(ci))), self.lanes)
                for wv, acc in zip(wvs, accs):
                    b.store(fma(b, xv, wv, b.load(acc)), acc)
