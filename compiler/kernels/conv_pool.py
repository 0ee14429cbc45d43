"""A float convolution, its bias (+ relu) and a k x k, stride k 'valid' max pool in one kernel.

The fuse-conv-pool pass (passes/fuse_conv_pool.py) gives a conv2d's fused epilogue a last max pool
(pool=k). Both forms write only the pooled output; the conv rows and columns a 'valid' pool drops
(the last of a 13 x 13 output under a 2 x 2 pool) are never computed:

  GEMM    the implicit GEMM of kernels/conv.py with its M rows in pool-window order (the k*k pixels
          of each window on consecutive rows, windows row-major: int8_pack.conv_pixel, the int8
          kernels' order) and MR a multiple of k*k, so every register tile holds whole windows: the
          micro-kernel applies the bias (+ relu) and stores the max of each window's rows
          (PoolEpilogue.write_tile). K runs in one block (KC >= K): C is never re-read.
  direct  a tiny contraction (first layers, kernels/direct.py): one task per pooled output row
          computes its k conv rows, each pixel max-ed into its window's output pixel (in L1).

Exact: max commutes with a per-channel bias add and with relu, and every conv value is summed as the
unfused kernel sums it (same k order; one K block as there while K <= the float GEMM's KC), so the
result is bitwise conv -> bias -> relu -> max_pool2d (llvm.maximum, as the pool kernel: NaN kept).
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

from llvmlite import ir

from ..loops import I1, gep, i64, intrinsic, llvm_type, masked_store, store_vec
from ..threads import parallel_function
from .config import GemmShape, gemm_shape, vector_bits, vector_registers
from .direct import GRAIN, _Direct, pixel_blocks, use_direct
from .epilogue import BiasActivation
from .gemm import GemmProblem, gemm_function
from .geometry import Geometry
from .im2col import Im2colA, split3
from .int8_pack import conv_pixel
from .matmul import ITEMSIZE
from .operands import BatchShape, Strided, StridedB, StridedC


def conv_pool_function(module: ir.Module, features: str, dtype: str, geo: Geometry, epi: BiasActivation | None,
                       k: int) -> ir.Function:
    """Get or emit `void f(T* x, T* w, T* y, T* epilogue_ptrs..., i64 batch, i64 nthreads)`: y is the
    k x k, stride k 'valid' max pool of the convolution's (biased, relu'd) output."""
    epi = epi or BiasActivation()
    if geo.groups != 1 or dtype not in ("f32", "f64") or k < 2 or geo.oh < k or geo.ow < k:
        raise NotImplementedError(f"fused conv + {k}x{k} max pool: needs a float, ungrouped convolution with an "
                                  f"output of at least {k}x{k}, got {dtype} {geo}")
    lanes = vector_bits(features) // (8 * ITEMSIZE[dtype])
    elem = llvm_type(dtype)
    if use_direct(geo, lanes):
        return _direct_pooled(module, features, elem, lanes, geo, epi, k)
    shape = pooled_shape(features, ITEMSIZE[dtype], geo, k)
    pepi = PoolEpilogue(epi.bias, epi.activation, k * k)
    key = repr(("pool", dtype, geo, k, pepi.ident, shape))
    name = f"kc_conv_pool_{pepi.ident}_" + hashlib.sha1(key.encode()).hexdigest()[:12]
    return gemm_function(module, _pooled_forward(name, elem, geo, k, pepi, shape), shape)


def pooled_shape(features: str, elem_bytes: int, geo: Geometry, k: int) -> GemmShape:
    """The conv's GEMM tile with MR a multiple of k*k (thread and cache blocks are multiples of MR, so
    no window straddles two tiles or two threads) and KC >= K (one K block), caches scaled to fit."""
    window = k * k
    shape = gemm_shape(features, elem_bytes, geo.cout)
    if shape.mr < window:   # AVX2's 6-row tile under a 3x3 pool: one column vector affords 14 rows
        shape = gemm_shape(features, elem_bytes, 1)
    mr = shape.mr // window * window
    depth = geo.kh * geo.kw * geo.c
    kc = max(shape.kc, depth)
    # the packing buffers live on each worker's stack: a longer K block gets fewer rows and columns
    mc = max(mr, (96 // mr) * mr * shape.kc // kc // mr * mr)
    nc = max(shape.nr, shape.nc * shape.kc // kc // shape.nr * shape.nr)
    return replace(shape, mr=mr, kc=kc, mc=mc, nc=nc)


class PoolEpilogue(BiasActivation):
    """Bias (+ relu) on the tile, then each run of `window` rows (one pool window) stored as their max
    to one row of the pooled output (the tile's C pointer is its first window's pooled row)."""

    def __init__(self, bias: bool, activation: str, window: int):
        super().__init__(bias, activation)
        self.window = window

    @property
    def key(self) -> str:
        return f"biasactpool{self.window}"

    @property
    def ident(self) -> str:
        return f"{super().ident}pool{self.window}"

    def write_tile(self, e, vals):
        """e: the micro-kernel emitter (kernels/microkernel.py); vals[r][v]: row r, column vector v."""
        b, ldc, kk = e.b, e.a["ldc"], self.window
        for w in range(-(-e.mr // kk)):
            rows = vals[w * kk:(w + 1) * kk]
            if w == 0:
                self._store_window(e, rows, w)
                continue
            with b.if_then(b.icmp_signed("<", i64(w * kk), e.a["mvalid"])):   # whole windows only
                self._store_window(e, rows, w)

    def _store_window(self, e, rows, w):
        b = e.b
        for v in range(e.nv):
            top = rows[0][v]
            for row in rows[1:]:
                top = intrinsic(b, "llvm.maximum", [top, row[v]])
            ptr = gep(b, e.a["c"], b.add(b.mul(i64(w), e.a["ldc"]), i64(v * e.lanes)))
            if e.masks[v] is None:
                store_vec(b, top, ptr)
            else:
                masked_store(b, top, ptr, e.masks[v])


class PooledC(StridedC):
    """C of a pooled GEMM: GEMM row i (window-major) lands in pooled row i // window."""

    def __init__(self, layout: Strided, batch_shape: BatchShape, window: int):
        super().__init__(layout, batch_shape)
        self.window = window

    def tile(self, b, ptr, bi, row, col):
        return super().tile(b, ptr, bi, b.sdiv(row, i64(self.window)), col)


def _pooled_forward(name, elem, g: Geometry, k: int, epi: PoolEpilogue, shape: GemmShape) -> GemmProblem:
    """conv.py's forward GEMM over the pooled windows' pixels: M = (oh//k)*(ow//k)*k*k rows per image."""
    one = BatchShape((1,))

    def rows(b, i, grp):
        n, oh, ow = conv_pixel(b, g, i, k)
        return (b.sub(b.mul(oh, i64(g.sh)), i64(g.pt)), b.sub(b.mul(ow, i64(g.sw)), i64(g.pl)),
                b.mul(n, i64(g.h * g.w * g.c)))

    def cols(b, kidx, grp):
        kh, kw, ci = split3(b, kidx, g.kw, g.c)
        return b.mul(kh, i64(g.dh)), b.mul(kw, i64(g.dw)), ci
    a = Im2colA((g.h, g.w), g.c, rows, cols, layout="rows", run=g.c, lanes=shape.lanes,
                taps=(g.kh, g.kw, shape.kc))
    layout = Strided(g.cout, 1, (0,))
    return GemmProblem(name, elem, one, (g.oh // k) * (g.ow // k) * k * k, g.cout, g.kh * g.kw * g.c, a,
                       StridedB(layout, one, shape.lanes), PooledC(layout, one, k * k), epi, m_per_batch=True)


def _direct_pooled(module, features, elem, lanes, geo: Geometry, epi, k: int) -> ir.Function:
    name = "kc_conv_direct_pool_" + hashlib.sha1(repr((str(elem), geo, lanes, epi.ident, k)).encode()).hexdigest()[:12]
    em = _PooledDirect(elem, lanes, geo, epi, vector_registers(features), k)
    ph, pw = geo.oh // k, geo.ow // k
    rows = lambda b, batch: b.mul(batch, i64(ph))
    work = lambda b, batch: b.mul(batch, i64(ph * pw * k * k * geo.cout * geo.kh * geo.kw * geo.c))
    return parallel_function(module, name, [elem.as_pointer()] * (3 + epi.nptrs), rows, em.row, work, GRAIN)


class _PooledDirect(_Direct):
    """The direct kernel over the pooled windows' pixels; a task is one pooled output row."""

    def __init__(self, elem, lanes, geo: Geometry, epi, registers, k: int):
        # the conv over the rows and columns the pool covers: the same values, the rest never computed
        super().__init__(elem, lanes, replace(geo, oh=geo.oh // k * k, ow=geo.ow // k * k), epi, registers)
        self.k, self.pw = k, geo.ow // k
        # blocks of whole windows: their columns are max-ed in registers, one store per window and row
        self.blocks = pixel_blocks(self.g, self.nv, registers, k)

    def row(self, b, task, ptrs, batch):
        for dy in range(self.k):   # conv row task*k + dy of the truncated geometry
            self.pooled_row, self.first_row = task, dy == 0
            super().row(b, b.add(b.mul(task, i64(self.k)), i64(dy)), ptrs, batch)

    def _finish_block(self, b, task, ow, ptrs, sets, masks, kargs):
        """A block of whole windows (ow a multiple of k): each window's k columns max-ed in registers,
        then stored (row 0) or max-ed into the output (later rows, stored a whole row earlier). Storing
        each pixel's max at once instead (load, max, store per pixel) waits on store-to-load forwarding
        from the pixel before, which an output 16 bytes off a 32-byte boundary (numpy's large arrays
        are 16 bytes past a page) defeats on AVX-512: 18 % slower on Zen 4 (bench_conv_pool_align.py)."""
        k = self.k
        if len(sets) % k:
            return super()._finish_block(b, task, ow, ptrs, sets, masks, kargs)
        for w in range(len(sets) // k):
            pixel = b.add(b.mul(self.pooled_row, i64(self.pw)), b.add(b.sdiv(ow, i64(k)), i64(w)))
            values = []
            for v, mask in enumerate(masks):
                col = i64(v * self.lanes)
                vals = [self.epi.apply(b, b.load(accs[v]), pixel, col, kargs, mask) for accs in sets[w * k:(w + 1) * k]]
                top = vals[0]
                for val in vals[1:]:
                    top = self.maximum(b, top, val)
                values.append(top)
            self._pool_store(b, ptrs, pixel, values, masks, ir.Constant(I1, int(self.first_row)))

    def _finish(self, b, task, ow, ptrs, accs, masks, kargs):
        """The epilogue on pixel ow of the row, max-ed into its window's pooled pixel (the window's first
        pixel, row 0 and ow % k == 0, stores; columns go in increasing order within the task)."""
        k = self.k
        pixel = b.add(b.mul(self.pooled_row, i64(self.pw)), b.sdiv(ow, i64(k)))
        first = (b.icmp_signed("==", b.srem(ow, i64(k)), i64(0)) if self.first_row else ir.Constant(I1, 0))
        values = [self.epi.apply(b, b.load(acc), pixel, i64(v * self.lanes), kargs, mask)
                  for v, (acc, mask) in enumerate(zip(accs, masks))]
        self._pool_store(b, ptrs, pixel, values, masks, first)

    def _pool_store(self, b, ptrs, pixel, values, masks, first):
        """values (one per channel vector) stored to pooled pixel `pixel` where `first`, else max-ed in."""
        out = gep(b, ptrs[2], b.mul(pixel, i64(self.g.cout)))
        for v, (value, mask) in enumerate(zip(values, masks)):
            ptr = gep(b, out, i64(v * self.lanes))
            pooled = self.maximum(b, self.load(b, ptr, mask), value)
            self.store(b, b.select(first, value, pooled), ptr, mask)
