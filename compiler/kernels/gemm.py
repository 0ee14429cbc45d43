"""Cache-blocked, packed, multi-threaded GEMM driver (BLIS loop order) around the register micro-kernel.

For every batch item: C[M x N] (+)= A[M x K] @ B[K x N], then the epilogue on the finished tile.
Loops: jc over N in NC blocks -> pc over K in KC blocks (pack B: KC x NC, lives in L2/L3) ->
ic over M in MC blocks (pack A: MC x KC, lives in L2) -> jr over NR columns -> ir over MR rows ->
micro-kernel (B micro-panel stays in L1 across ir).  Small M skips packing A, and B is read in
place when its columns are contiguous and M spans at most DIRECT_B_MC_BLOCKS row blocks (a batch-1
dense layer streams the weights once; at batch 64 packing them would cost a tenth of the layer).
A B prepacked once per weight version (passes/f32_prepack.py) comes as one more pointer: the normal
tile then streams its panels (all of K per panel) and never packs.
Threads split the (batch, M, N) space into tasks, each with its own packing buffers on its stack
(MC*KC + KC*NC elements: about 540 KiB for f32, well inside the usual 8 MiB thread stacks).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..threads import ParallelRegion, effective_threads
from .config import GemmShape
from .epilogue import Epilogue
from ..loops import (I1, I64, ceil_div, entry_alloca, for_range, gep, i64, imax, imin,
                     internal_function, round_up)
from .microkernel import tile_function, tile_variants
from .operands import BatchShape

# Work per thread (in flops at the FMA peak) below which another thread is not worth waking: about
# 7 us of one core's time. A worker that has just finished a region spins for a while (GOMP_SPINCOUNT,
# compiler/threads.py) and joins the next one within a microsecond or two; one asleep takes far
# longer, which the thread tuner (ir/thread_tuner.py) sees and answers by running such calls on one.
# At 1 << 20 the convnet's last convolution at batch 1 (5x5x64->128: 1.3 Mflop + its weights, 15 us
# on one core, 8.4-10 us on two) stayed on one core: the whole convnet at batch 1 on 2 threads took
# 42.6 us against 35.8 us now (native, best processes); MLP and batch 8/64 unchanged.
GRAIN_FLOPS = 3 << 18
# Streaming one element of B costs about as long as this many flops at the peak, whatever M is: a
# batch-1 dense layer is bound by reading its weights (784x512 f32 from L3: ~19 us on one Zen 4
# core for 0.8 Mflop, 2 us of it multiply-adds), so counting flops alone kept it on one core.
STREAM_FLOPS_PER_B_ELEMENT = 6
# Below these many rows (M) an A panel is used too few times to pay for packing it.
PACK_A_MIN_ROWS = 16
# A transposed A (a weight gradient's x^T, K = the batch) is packed only when K spans more than one
# KC block: within one block the MR-row column reads stream as well from memory, and every NC
# block re-packed all of A (measured at 1 thread, load 6-8, K = 32..256: M x N = 784 x 512 7-19 % faster
# in place, 3136 x 128 12-38 %, 256 x 2048 6-13 %; the MNIST MLP's x^T dh at batch 128: 1143 -> 1049 us).
PACK_T_A_MIN_BLOCKS = 2
# B (contiguous columns) is read in place while M spans at most this many MC blocks: the strided
# B micro-panels then come from L2 fast enough (dense 784->512 at M = 32..192: 96 % of peak read in
# place, 84-94 % packed, packing the 1.6 MB of weights every call); with more blocks re-reading them
# costs more than one packing (M = 256: 91 % in place, 93 % packed). Small M gains most: reading B in
# place beat packing by 7-27 % at M = 32 and 48 (batch-32 dense layers, an LSTM step's [32,64]x[64,256]).
DIRECT_B_MC_BLOCKS = 2
# K block of a GEMM whose B comes prepacked (passes/f32_prepack.py): its micro-panels hold all of K
# contiguously, so no B block has to fit a cache, and one K block saves re-reading C per block:
# dense 784->512 (one block instead of three of 262) 2-5 % faster at batch 64 and 256, warm or cold.
PREPACKED_KC = 1024


@dataclass
class GemmProblem:
    """One GEMM call site; only M (x batch when `m_per_batch`) and batch axes depend on the batch size."""

    name: str
    elem: ir.Type
    batch_shape: BatchShape
    m: int
    n: int
    k: int
    a: object             # StridedA or an im2col source: direct(...) / pack(...)
    b: object             # StridedB or a packed-only source
    c: object             # StridedC: tile(...), epilogue_col(...), accumulate
    epi: Epilogue
    m_per_batch: bool = False
    k_per_batch: bool = False   # K = k * batch (a filter gradient sums over the batch)
    # B also comes prepacked in NR-column panels of all K rows (passes/f32_prepack.py), one more
    # pointer after the epilogue's: the normal tile streams it, the wide tile reads the plain B
    b_prepacked: bool = False

    def rows(self, b, batch):
        return b.mul(i64(self.m), batch) if self.m_per_batch else i64(self.m)

    def depth(self, b, batch):
        return b.mul(i64(self.k), batch) if self.k_per_batch else i64(self.k)


def gemm_function(module: ir.Module, prob: GemmProblem, shape: GemmShape, wide: GemmShape | None = None
                  ) -> ir.Function:
    """Get or emit `void name(T* a, T* b, T* c, T* epilogue_ptrs..., [T* packed_b,] i64 batch, i64 nthreads)`."""
    ptr = prob.elem.as_pointer()
    extra = ["bp"] if prob.b_prepacked else []
    names = ["a", "b", "c"] + [f"e{i}" for i in range(prob.epi.nptrs)] + extra + ["batch", "nthreads"]
    fn = internal_function(module, prob.name, ir.VoidType(), [ptr] * (len(names) - 2) + [I64, I64], names)
    if fn is None:
        return module.globals[prob.name]
    _GemmEmitter(module, fn, prob, shape, wide).emit()
    return fn


class _GemmEmitter:
    def __init__(self, module, fn, prob: GemmProblem, shape: GemmShape, wide: GemmShape | None):
        self.module, self.fn, self.p, self.s = module, fn, prob, shape
        # the wide tile needs B read in place (contiguous columns) and A unpacked
        # (an A with its own tile functions, window_tile.WindowA, is read only by them)
        own_tiles = getattr(prob.a, "tile_function", None) is not None
        self.wide = wide if prob.b.direct_ok and not prob.a.packed_only and not own_tiles and prob.n > shape.nr else None
        self.nptr = 3 + prob.epi.nptrs + int(prob.b_prepacked)

    def emit(self):
        b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        p, s = self.p, self.s
        args = list(self.fn.args)
        batch, nthreads = args[-2], args[-1]
        nb, m = p.batch_shape.count(b, batch), p.rows(b, batch)
        if p.n <= 0:
            b.ret_void()
            return
        with b.if_then(b.or_(b.icmp_signed("<=", nb, i64(0)), b.icmp_signed("<=", m, i64(0)))):
            b.ret_void()
        depth = imax(b, p.depth(b, batch), 1)
        flops = b.mul(b.mul(b.mul(nb, m), i64(2 * p.n)), depth)
        streamed = b.mul(depth, i64(p.n * STREAM_FLOPS_PER_B_ELEMENT))   # (at least one B, once)
        nthreads = effective_threads(b, nthreads, b.add(flops, streamed), GRAIN_FLOPS)
        mchunk, nchunk, tm, tn = self._partition(b, nb, m, nthreads)
        depth = p.depth(b, batch)
        fields = args[:self.nptr] + [m, depth, mchunk, nchunk, tm, tn, *self._pack_flags(b, m, depth)]
        region = ParallelRegion(self.module, f"{p.name}.worker", [f.type for f in fields], self._task)
        region.run(b, nthreads, b.mul(nb, b.mul(tm, tn)), fields)
        b.ret_void()

    def _pack_flags(self, b, m, depth):
        """(pack A, pack B) as i64 0/1: packing pays once a panel is reused enough."""
        p, s = self.p, self.s
        many_rows = lambda limit: b.zext(b.icmp_signed(">=", m, i64(limit)), I64)
        # with a single column panel every A element is read once: packing it would only copy
        if p.a.packed_only:
            pack_a = i64(1)
        elif p.n <= s.nr or not p.a.pack_pays:
            pack_a = i64(0)
        else:   # (pack_pays: a transposed A)
            long_k = b.icmp_signed(">", depth, i64((PACK_T_A_MIN_BLOCKS - 1) * s.kc))
            pack_a = b.and_(many_rows(PACK_A_MIN_ROWS), b.zext(long_k, I64))
        pack_b = many_rows(DIRECT_B_MC_BLOCKS * s.mc + 1) if p.b.direct_ok else i64(1)
        return pack_a, (i64(0) if p.b_prepacked else pack_b)

    def _partition(self, b, nb, m, nthreads):
        """Split each batch item's M x N into about nthreads/nb chunks.

        Every N chunk repacks all of A and every M chunk all of B, so the cheaper operand is the one
        duplicated: N is split first unless A (rows x K, window gathers counting thrice) costs more.
        """
        s, p = self.s, self.p
        want = imax(b, ceil_div(b, nthreads, nb), 1)
        n_tiles, m_tiles = ceil_div(b, i64(p.n), s.nr), ceil_div(b, m, s.mr)
        a_cost = b.mul(m, i64(3 if p.a.packed_only else 1))
        m_first = b.icmp_signed(">", a_cost, i64(p.n))        # (both costs share the factor K)
        first = b.select(m_first, m_tiles, n_tiles)
        t1 = imax(b, imin(b, want, first), 1)
        t2 = imax(b, imin(b, ceil_div(b, want, t1), b.select(m_first, n_tiles, m_tiles)), 1)
        tm, tn = b.select(m_first, t1, t2), b.select(m_first, t2, t1)
        nchunk = round_up(b, ceil_div(b, i64(p.n), tn), s.nr)
        mchunk = round_up(b, ceil_div(b, m, tm), s.mr)
        return mchunk, nchunk, ceil_div(b, m, mchunk), ceil_div(b, i64(p.n), nchunk)

    def _task(self, b, task, fields):
        ptrs = fields[:self.nptr]
        m, k, mchunk, nchunk, tm, tn, pack_a, pack_b = fields[self.nptr:]
        bi = b.sdiv(task, b.mul(tm, tn))
        mi = b.srem(b.sdiv(task, tn), tm)
        ni = b.srem(task, tn)
        m0, n0 = b.mul(mi, mchunk), b.mul(ni, nchunk)
        mlen = imin(b, mchunk, b.sub(m, m0))
        nlen = imin(b, nchunk, b.sub(i64(self.p.n), n0))
        bufs = (entry_alloca(b, self.p.elem, self.s.mc * self.s.kc),
                entry_alloca(b, self.p.elem, self.s.kc * self.s.nc))
        normal = _Macro(self, self.s, b, ptrs, bi, k, bufs, b.trunc(pack_a, I1), b.trunc(pack_b, I1),
                        prepacked=self.p.b_prepacked)
        if self.wide is None:
            normal.emit(m0, mlen, n0, nlen)
            return
        no = ir.Constant(I1, 0)
        with b.if_else(b.icmp_signed("<=", m, i64(self.wide.mr))) as (then, otherwise):
            with then:
                _Macro(self, self.wide, b, ptrs, bi, k, bufs, no, no).emit(m0, mlen, n0, nlen)
            with otherwise:
                normal.emit(m0, mlen, n0, nlen)


class _Macro:
    """The five blocked loops for one task's rectangle of C."""

    def __init__(self, g: _GemmEmitter, shape: GemmShape, b, ptrs, bi, k, bufs, pack_a, pack_b, prepacked=False):
        self.g, self.s, self.b, self.bi, self.k = g, shape, b, bi, k
        self.pa, self.pb, self.pc_ = ptrs[0], ptrs[1], ptrs[2]
        nepi = g.p.epi.nptrs
        self.kargs = g.p.epi.kernel_args(b, ptrs[3:3 + nepi], g.p.elem)
        self.prepacked = ptrs[3 + nepi] if prepacked else None
        self.abuf, self.bbuf = bufs
        self.pack_a, self.pack_b = pack_a, pack_b

    def emit(self, m0, mlen, n0, nlen):
        b, s, k = self.b, self.s, self.k
        with for_range(b, n0, b.add(n0, nlen), s.nc, "jc") as jc:
            nc = imin(b, s.nc, b.sub(b.add(n0, nlen), jc))
            # max(K, 1): with K == 0 one pass with kc == 0 still writes C = 0 (+ epilogue);
            # K blocks of equal size (<= KC): no short last block paying a full C reload
            depth = imax(b, k, 1)
            kc_max = max(s.kc, PREPACKED_KC) if self.prepacked is not None else s.kc
            step = ceil_div(b, depth, ceil_div(b, depth, kc_max))
            with for_range(b, 0, depth, step, "pc") as pc:
                kc = imin(b, step, b.sub(k, pc))
                self._pack_b(pc, kc, jc, nc)
                with for_range(b, m0, b.add(m0, mlen), s.mc, "ic") as ic:
                    mc = imin(b, s.mc, b.sub(b.add(m0, mlen), ic))
                    self._pack_a(ic, mc, pc, kc)
                    self._tiles(ic, mc, pc, kc, jc, nc)

    def _pack_b(self, pc, kc, jc, nc):
        b = self.b
        with b.if_then(self.pack_b):
            self.g.p.b.pack(b, self.pb, self.bi, self.bbuf, pc, kc, jc, nc, self.s.nr)

    def _pack_a(self, ic, mc, pc, kc):
        b = self.b
        with b.if_then(self.pack_a):
            self.g.p.a.pack(b, self.pa, self.bi, self.abuf, ic, mc, pc, kc, self.s.mr)

    def _tiles(self, ic, mc, pc, kc, jc, nc):
        b, s, p = self.b, self.s, self.g.p
        accumulate = b.icmp_signed(">", pc, i64(0))
        if p.c.accumulate:
            accumulate = ir.Constant(I1, 1)
        last = b.icmp_signed(">=", b.add(pc, kc), self.k)
        with for_range(b, 0, nc, s.nr, "jr") as jr:
            nr = imin(b, s.nr, b.sub(nc, jr))
            bptr, rsb = self._b_panel(pc, kc, b.add(jc, jr), jr)
            with for_range(b, 0, mc, s.mr, "ir") as ir_:
                mr = imin(b, s.mr, b.sub(mc, ir_))
                row = b.add(ic, ir_)
                aptr, rsa, csa = self._a_panel(row, pc, kc, ir_)
                cptr, ldc = p.c.tile(b, self.pc_, self.bi, row, b.add(jc, jr))
                ecol = p.c.epilogue_col(b, self.bi, b.add(jc, jr))
                args = [kc, aptr, rsa, csa, bptr, rsb, cptr, ldc, nr, accumulate, last, row, ecol, mr]
                self._dispatch(args + self.kargs)

    def _a_panel(self, row, pc, kc, ir_):
        b, s, src = self.b, self.s, self.g.p.a
        packed = (gep(b, self.abuf, b.mul(ir_, kc)), *src.packed_strides(kc, s.mr))
        if src.packed_only:
            return packed
        direct = src.direct(b, self.pa, self.bi, row, pc)
        return tuple(b.select(self.pack_a, x, y) for x, y in zip(packed, direct))

    def _b_panel(self, pc, kc, col, jr):
        b, s, src = self.b, self.s, self.g.p.b
        if self.prepacked is not None:   # panel col / NR holds all K rows of its NR columns
            start = b.add(b.mul(b.sdiv(col, i64(s.nr)), i64(self.g.p.k * s.nr)), b.mul(pc, i64(s.nr)))
            return gep(b, self.prepacked, start), i64(s.nr)
        packed = (gep(b, self.bbuf, b.mul(jr, kc)), i64(s.nr))
        if not src.direct_ok:
            return packed
        direct = src.direct(b, self.pb, self.bi, pc, col)
        return tuple(b.select(self.pack_b, x, y) for x, y in zip(packed, direct))

    def _dispatch(self, args):
        """One call per tile: the shared tile function picks the micro-kernel variant."""
        b, s, p = self.b, self.s, self.g.p
        tier0 = getattr(getattr(self.g.module, "kc_kernels", None), "tiered", False)   # (tier_up.py)
        cols, heights = tile_variants(p.n, s.nr, None if p.m_per_batch else p.m, s.mr, fewest=tier0)
        if s is self.g.wide:   # thread chunks are multiples of the normal NR, not of the wide one
            cols = ("full", "edge") if p.n >= s.nr else ("edge",)
        variants = (cols, heights)
        tiles = getattr(p.a, "tile_function", None) or tile_function
        b.call(tiles(self.g.module, p.elem, s.lanes, s.mr, s.nr, p.epi, variants), args)
