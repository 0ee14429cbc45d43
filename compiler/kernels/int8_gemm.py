"""The int8 GEMM driver: C[M x N] = (A - a_zp) @ (B - b_zp) with exact i32 accumulation, per group.

Loops (one task = one group's block of NC columns and one chunk of rows): pack the B block into
k-group panels with its column corrections (stack, <= B_BYTES) -> for each MC rows: pack A with row
sums (stack, <= A_BYTES) -> for each NR-column panel (stays in L1) -> for each MR-row tile: the
micro-kernel over the whole K, then its epilogue (store i32, or requantize to 8 bits).
A weight that is a parameter comes packed once (passes/int8_prepack.py adds its packed copy; the JIT
repacks it only when a caller passes another array): the kernel then reads the panels and column sums
in place, at any row count. A B that is a graph input is packed on each call (and read in place, never
packed, when the rows fit one direct tile). Tasks split groups x column blocks first, rows only when
threads are left over, so one thread packs each weight byte once per call.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..threads import ParallelRegion, effective_threads
from .int8_isa import Int8Isa
from .int8_microkernel import StoreI32, tile_function
from .int8_pack import a_pack_words, any_nonzero, column_terms, pack_a, pack_b, rowbuf_bytes
from ..loops import I8, I32, I64, ceil_div, entry_alloca, for_range, gep, i64, imin, internal_function, round_up

A_BYTES = 64 << 10          # packed A block (MC rows x K): L2-resident
B_BYTES = 256 << 10         # packed B block (K x NC): L2-resident, its NR panels L1-resident
MAX_PANEL_BYTES = 4 << 20   # one NR-column panel of K must fit on a worker's stack
# work units per thread below which no other thread is woken: a call's work counts 2 * K per result
# (multiply-adds x 2) plus EPILOGUE_OPS (its share of packing A and of the epilogue, which dominate at
# small K: a 1-channel 3x3 convolution). Twice the f32 GEMM's grain in units the int8 kernels run
# about four times as fast: ~20 us a thread.
GRAIN_OPS = 1 << 23
EPILOGUE_OPS = 16


@dataclass(frozen=True)
class Int8Gemm:
    """One static call site. The source gives K and reads the A rows (matrix rows or conv windows)."""

    name: str
    isa: Int8Isa
    source: object
    rows: int                 # rows of C per batch item (M = rows * batch when rows_per_batch)
    rows_per_batch: bool
    n: int                    # columns per group
    ldb: int                  # row stride of B (= n * groups)
    groups: int = 1
    bz_per_col: bool = False
    out: object = StoreI32()
    prepacked: bool = False   # B also comes packed (passes/int8_prepack.py layout): no packing per call
    bz_zero: bool = False     # B's zero points are known to be zero: A's row sums are never needed

    @property
    def kgroups(self) -> int:
        return -(-self.source.k // self.isa.group)

    def blocks(self):
        """(NC, MC): columns per B block (NR multiple, balanced), rows per A block (MR multiple)."""
        isa, kbytes, pnr = self.isa, max(1, self.kgroups * self.isa.group * self.isa.b_bytes), self.isa.panel_nr
        if kbytes * pnr > MAX_PANEL_BYTES:
            raise NotImplementedError(f"int8 GEMM {self.name}: a contraction of K = {self.source.k} does not fit "
                                      f"the kernel's stack panels (at most {MAX_PANEL_BYTES // pnr} values)")
        nc_max = max(pnr, B_BYTES // kbytes // pnr * pnr)
        nblocks = -(-max(self.n, 1) // nc_max)
        nc = -(-(-(-max(self.n, 1) // nblocks)) // pnr) * pnr
        mc = max(isa.mr, min(20 * isa.mr, A_BYTES // (max(1, self.kgroups) * 4) // isa.mr * isa.mr))
        return nc, mc


def int8_gemm_function(module: ir.Module, prob: Int8Gemm) -> ir.Function:
    """`void f(i8* a, i8* b, i8* a_zp, i8* b_zp, T* c, out ptrs..., [i8* packed b,] i64 batch, i64 nthreads)`."""
    out = prob.out
    packed = [I8.as_pointer()] if prob.prepacked else []
    types = [I8.as_pointer()] * 4 + [out.elem.as_pointer()] + out.ptr_types() + packed + [I64, I64]
    names = (["a", "b", "azp", "bzp", "c"] + [f"o{i}" for i in range(out.nptrs)] + ["packed"] * len(packed)
             + ["batch", "nthreads"])
    fn = internal_function(module, prob.name, ir.VoidType(), types, names)
    if fn is None:
        return module.globals[prob.name]
    _Driver(module, fn, prob).emit()
    return fn


class _Driver:
    def __init__(self, module, fn, prob: Int8Gemm):
        self.module, self.fn, self.p = module, fn, prob
        self.nc, self.mc = prob.blocks()
        self.nblocks = -(-prob.n // self.nc) if prob.n else 0
        # a fused max pool (int8_microkernel.Requantize.pool): k*k rows of A make one row of C
        self.window_rows = getattr(prob.out, "window_rows", 1)

    def emit(self):
        b, p = ir.IRBuilder(self.fn.append_basic_block("entry")), self.p
        *ptrs, batch, nthreads = self.fn.args
        m = b.mul(i64(p.rows), batch) if p.rows_per_batch else i64(p.rows)
        with b.if_then(b.or_(b.icmp_signed("<=", m, i64(0)), ir.Constant(ir.IntType(1), self.nblocks == 0))):
            b.ret_void()
        work = b.mul(m, i64(p.n * p.groups * (2 * max(1, p.source.k) + EPILOGUE_OPS)))
        threads = effective_threads(b, nthreads, work, GRAIN_OPS)
        if p.prepacked or self.window_rows > 1:   # B read in place at any row count / pooled tiles: packed only
            self._packed_region(b, ptrs, m, threads)
        else:
            with b.if_else(b.icmp_signed("<=", m, i64(p.isa.direct().mr))) as (few, many):
                with few:    # one row tile: B is read in place, never packed
                    self._direct_region(b, ptrs, m, threads)
                with many:
                    self._packed_region(b, ptrs, m, threads)
        b.ret_void()

    def _direct_region(self, b, ptrs, m, threads):
        p, direct = self.p, self.p.isa.direct()
        chunks = imin(b, ceil_div(b, threads, p.groups), -(-p.n // direct.nr))
        width = b.mul(ceil_div(b, ceil_div(b, i64(p.n), chunks), direct.nr), i64(direct.nr))
        fields = ptrs + [m, width, chunks]
        region = ParallelRegion(self.module, f"{p.name}.direct", [f.type for f in fields], self._direct_task)
        region.run(b, threads, b.mul(i64(p.groups), chunks), fields)

    def _packed_region(self, b, ptrs, m, threads):
        p = self.p
        outer = p.groups * self.nblocks
        mtiles = ceil_div(b, m, p.isa.mr)
        mchunks = imin(b, ceil_div(b, threads, outer), mtiles)
        chunk = b.mul(ceil_div(b, mtiles, mchunks), i64(p.isa.mr))
        fields = ptrs + [m, chunk, mchunks]
        region = ParallelRegion(self.module, f"{p.name}.worker", [f.type for f in fields], self._task)
        region.run(b, threads, b.mul(i64(outer), mchunks), fields)

    def _direct_task(self, b, task, fields):
        """Columns [lo, hi) of one group for all (at most the direct tile's MR) rows."""
        p, isa = self.p, self.p.isa.direct()
        a, w, azp, bzp, c = fields[:5]
        m, width, chunks = fields[5 + p.out.nptrs + p.prepacked:]
        kg = p.kgroups
        apack, rowsum = entry_alloca(b, I32, a_pack_words(isa.mr, kg, isa.group)), entry_alloca(b, I32, isa.mr)
        rowbuf = entry_alloca(b, I8, rowbuf_bytes(kg, isa.group))
        az = self._zero_point_a(b, azp)
        kargs = p.out.kernel_args(b, fields[5:5 + p.out.nptrs])
        group = b.sdiv(task, chunks)
        lo = b.mul(b.srem(task, chunks), width)
        hi = imin(b, p.n, b.add(lo, width))
        need = any_nonzero(b, bzp, p.n * p.groups, p.bz_per_col)
        pack_a(b, isa, p.source, a, group, i64(0), m, kg, apack, rowsum, rowbuf, b.trunc(az, I8), need)
        tile = tile_function(self.module, isa, p.out, "direct", kg)
        ldc, null32 = i64(p.n * p.groups), ir.Constant(I32.as_pointer(), None)
        with for_range(b, lo, hi, isa.nr, "jr") as jr:
            col = b.add(b.mul(group, i64(p.n)), jr)
            args = [i64(kg), apack, gep(b, w, col), rowsum, null32, null32, gep(b, c, col), ldc,
                    imin(b, isa.nr, b.sub(hi, jr)), m, col, i64(p.ldb), i64(p.source.k), az,
                    gep(b, bzp, col) if p.bz_per_col else bzp, ir.Constant(ir.IntType(1), p.bz_per_col)]
            b.call(tile, args + kargs)

    def _zero_point_a(self, b, azp):
        """a_zp in u8 space as i32 (an i8 zero point + 128)."""
        v = b.load(azp)
        return b.add(b.sext(v, I32), ir.Constant(I32, 128)) if self.p.source.signed else b.zext(v, I32)

    def _task(self, b, task, fields):
        p, isa = self.p, self.p.isa
        pnr = isa.panel_nr
        nout = p.out.nptrs
        a, w, azp, bzp, c = fields[:5]
        optrs = fields[5:5 + nout]
        packed = fields[5 + nout] if p.prepacked else None
        m, chunk, mchunks = fields[5 + nout + p.prepacked:]
        kg = p.kgroups
        bufs = self._buffers(b, kg)
        az = self._zero_point_a(b, azp)
        kargs = p.out.kernel_args(b, optrs)
        group = b.sdiv(task, b.mul(i64(self.nblocks), mchunks))
        rest = b.srem(task, b.mul(i64(self.nblocks), mchunks))
        jc = b.mul(b.sdiv(rest, mchunks), i64(self.nc))
        nc = imin(b, self.nc, b.sub(i64(p.n), jc))
        col0 = b.add(b.mul(group, i64(p.n)), jc)
        if p.prepacked:   # panels and column sums as passes/int8_prepack.py lays them out
            panels = -(-p.n // pnr)
            panel0 = b.add(b.mul(group, i64(panels)), b.sdiv(jc, i64(pnr)))
            bblock = gep(b, packed, b.mul(panel0, i64(kg * isa.kstride)))
            sums = b.bitcast(gep(b, packed, i64(p.groups * panels * kg * isa.kstride)), I32.as_pointer())
            column_terms(b, p.source.real_k, gep(b, sums, b.mul(panel0, i64(pnr))), col0, nc,
                         round_up(b, nc, pnr), bufs["colterm"], bufs["bzv"], bzp, p.bz_per_col, az)
        else:
            bblock = bufs["b"]
            pack_b(b, isa, w, p.ldb, p.source.real_k, kg, col0, nc, round_up(b, nc, pnr), bufs["b"], bufs["colterm"],
                   bufs["bzv"], bzp, p.bz_per_col, az)
        need = ir.Constant(ir.IntType(1), 0) if p.bz_zero else any_nonzero(b, bzp, p.n * p.groups, p.bz_per_col)
        m_lo = b.mul(b.srem(rest, mchunks), chunk)
        m_hi = imin(b, m, b.add(m_lo, chunk))
        tile = tile_function(self.module, isa, p.out, "packed0" if p.bz_zero else "packed", kg)
        ldc = i64(p.n * p.groups)
        with for_range(b, m_lo, m_hi, self.mc, "ic") as ic:
            mc = imin(b, self.mc, b.sub(m_hi, ic))
            if hasattr(p.source, "pack_rows"):   # a source that writes its words itself (int8_window.py)
                p.source.pack_rows(b, isa, a, ic, mc, kg, bufs["a"], bufs["rowsum"], need)
            else:
                pack_a(b, isa, p.source, a, group, ic, mc, kg, bufs["a"], bufs["rowsum"], bufs["row"],
                       b.trunc(az, I8), need)
            with for_range(b, 0, nc, isa.nr, "jr") as jr:   # the tile's columns: a panel, or a strip of one
                bpanel = gep(b, bblock, b.add(b.mul(b.sdiv(jr, i64(pnr)), i64(kg * isa.kstride)),
                                              b.mul(b.srem(jr, i64(pnr)), i64(isa.group * isa.b_bytes))))
                with for_range(b, 0, mc, isa.mr, "ir") as ir_:
                    row = b.add(ic, ir_)
                    crow = b.sdiv(row, i64(self.window_rows)) if self.window_rows > 1 else row
                    cptr = gep(b, c, b.add(b.mul(crow, ldc), b.add(col0, jr)))
                    args = [i64(kg), gep(b, bufs["a"], b.mul(ir_, i64(kg))), bpanel, gep(b, bufs["rowsum"], ir_),
                            gep(b, bufs["colterm"], jr), gep(b, bufs["bzv"], jr), cptr, ldc,
                            imin(b, isa.nr, b.sub(nc, jr)), imin(b, isa.mr, b.sub(mc, ir_)), b.add(col0, jr),
                            i64(0), i64(0), ir.Constant(I32, 0), ir.Constant(I8.as_pointer(), None),
                            ir.Constant(ir.IntType(1), 0)]
                    b.call(tile, args + kargs)

    def _buffers(self, b, kg: int) -> dict:
        isa = self.p.isa
        return {"a": entry_alloca(b, I32, a_pack_words(self.mc, kg, isa.group)), "rowsum": entry_alloca(b, I32, self.mc),
                "row": entry_alloca(b, I8, rowbuf_bytes(kg, isa.group)),
                "b": entry_alloca(b, I8, 1 if self.p.prepacked else max(1, kg * isa.group * isa.b_bytes * self.nc)),
                "colterm": entry_alloca(b, I32, self.nc), "bzv": entry_alloca(b, I32, self.nc)}
