"""Filter gradient of a convolution with a tiny contraction (first layers), computed directly.

dw[kh, kw, ci, :] = sum over pixels of x[n, oh*sh + kh*dh - pt, ow*sw + kw*dw - pl, ci] * dy[n, oh, ow, :].
With kh*kw*cin small every (tap, channel) row of dw has its own accumulators in registers while
the pixels stream by once; a GEMM would instead gather a window matrix of the whole batch.
Contiguous ranges of (image, output row) go into private partial sums, added at the end; how many
partials depends on the work only, so the result does not depend on the thread count.
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from ..threads import ParallelRegion, effective_threads
from .config import vector_bits
from .geometry import Geometry
from ..loops import (I64, entry_alloca, fma, for_range, gep, i64, imax, imin, lane_mask, llvm_type, load_vec,
                     masked_load, masked_store, splat, store_vec, zero)
from .matmul import ITEMSIZE

MAX_ACCUMULATORS = 24   # (kh*kw*cin) x (cout vectors) kept in registers
MAX_PARTIALS = 8        # private partial sums at most (threads beyond them idle)
GRAIN = 1 << 20         # multiply-adds per thread below which another thread is not worth waking


def use_direct_filter_grad(geo: Geometry, lanes: int) -> bool:
    return geo.groups == 1 and geo.kh * geo.kw * geo.c * -(-geo.cout // lanes) <= MAX_ACCUMULATORS


def direct_filter_grad_function(module: ir.Module, features: str, dtype: str, geo: Geometry) -> ir.Function:
    """Get or emit `void f(T* x, T* dy, T* dw, i64 batch, i64 nthreads)`."""
    elem = llvm_type(dtype)
    lanes = vector_bits(features) // (8 * ITEMSIZE[dtype])
    if not use_direct_filter_grad(geo, lanes):
        raise ValueError(f"direct filter gradient needs groups=1 and few taps, got {geo}")
    name = "kc_conv_filter_grad_direct_" + hashlib.sha1(repr((dtype, geo, lanes)).encode()).hexdigest()[:12]
    if name in module.globals:
        return module.globals[name]
    return _DirectFilterGrad(module, name, elem, lanes, geo).fn


class _DirectFilterGrad:
    def __init__(self, module, name, elem, lanes, geo: Geometry):
        self.elem, self.lanes, self.g = elem, lanes, geo
        self.vty = ir.VectorType(elem, lanes)
        self.nv = -(-geo.cout // lanes)
        self.taps = [(kh, kw, ci) for kh in range(geo.kh) for kw in range(geo.kw) for ci in range(geo.c)]
        self.size = len(self.taps) * geo.cout            # elements of dw
        ptr = elem.as_pointer()
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, ptr, I64, I64]), name=name)
        self.fn.linkage = "internal"
        # fields: x, dy, partial sums, rows (batch * oh), chunks
        self.region = ParallelRegion(module, f"{name}.worker", [ptr, ptr, ptr, I64, I64], self._task)
        self._emit()

    def _emit(self):
        g, (x, dy, dw, batch, nthreads) = self.g, self.fn.args
        b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        partial = entry_alloca(b, self.elem, MAX_PARTIALS * self.size)
        rows = b.mul(batch, i64(g.oh))
        work = b.mul(rows, i64(g.ow * self.size))
        # the partial sums depend on the work alone, never on the threads: any thread count adds the same
        # numbers in the same order (bitwise equal results); threads then take the chunks
        chunks = imax(b, imin(b, imin(b, b.sdiv(work, i64(GRAIN)), MAX_PARTIALS), rows), 1)
        self.region.run(b, effective_threads(b, nthreads, work, GRAIN), chunks, [x, dy, partial, rows, chunks])
        total = entry_alloca(b, self.elem, 1)
        with for_range(b, 0, self.size, 1, "sum.i") as i:    # dw = the partial sums added up
            b.store(zero(self.elem), total)
            with for_range(b, 0, chunks, 1, "sum.t") as t:
                part = b.load(gep(b, partial, b.add(b.mul(t, i64(self.size)), i)))
                b.store(b.fadd(b.load(total), part), total)
            b.store(b.load(total), gep(b, dw, i))
        b.ret_void()

    def _task(self, b, task, fields):
        x, dy, partial, rows, chunks = fields
        g = self.g
        accs = [[entry_alloca(b, self.vty, 1) for _ in range(self.nv)] for _ in self.taps]
        for row in accs:
            for acc in row:
                b.store(zero(self.vty), acc)
        masks = [None if (v + 1) * self.lanes <= g.cout else lane_mask(b, i64(g.cout - v * self.lanes), self.lanes)
                 for v in range(self.nv)]
        first, last = (b.sdiv(b.mul(t, rows), chunks) for t in (task, b.add(task, i64(1))))
        with for_range(b, first, last, 1, "r") as r:
            self._row(b, x, dy, r, accs, masks)
        out = gep(b, partial, b.mul(task, i64(self.size)))
        for t, row in enumerate(accs):
            for v, acc in enumerate(row):
                dst = gep(b, out, i64(t * g.cout + v * self.lanes))
                store_vec(b, b.load(acc), dst) if masks[v] is None else masked_store(b, b.load(acc), dst, masks[v])

    def _row(self, b, x, dy, r, accs, masks):
        g = self.g
        n, oh = b.sdiv(r, i64(g.oh)), b.srem(r, i64(g.oh))
        image = gep(b, x, b.mul(n, i64(g.h * g.w * g.c)))
        hs = [b.add(b.mul(oh, i64(g.sh)), i64(kh * g.dh - g.pt)) for kh in range(g.kh)]
        h_ok = [b.icmp_unsigned("<", h, i64(g.h)) for h in hs]
        grads = gep(b, dy, b.mul(r, i64(g.ow * g.cout)))
        with for_range(b, 0, g.ow, 1, "ow") as ow:
            at = gep(b, grads, b.mul(ow, i64(g.cout)))
            dyv = [load_vec(b, gep(b, at, i64(v * self.lanes)), self.lanes) if m is None else
                   masked_load(b, gep(b, at, i64(v * self.lanes)), m, self.lanes) for v, m in enumerate(masks)]
            ws = [b.add(b.mul(ow, i64(g.sw)), i64(kw * g.dw - g.pl)) for kw in range(g.kw)]
            w_ok = [b.icmp_unsigned("<", w, i64(g.w)) for w in ws]
            for t, (kh, kw, ci) in enumerate(self.taps):
                valid = b.and_(h_ok[kh], w_ok[kw])
                idx = b.add(b.mul(b.add(b.mul(hs[kh], i64(g.w)), ws[kw]), i64(g.c)), i64(ci))
                value = b.load(b.select(valid, gep(b, image, idx), image))
                xv = splat(b, b.select(valid, value, zero(self.elem)), self.lanes)
                for v, acc in enumerate(accs[t]):
                    b.store(fma(b, xv, dyv[v], b.load(acc)), acc)
