"""The int8 register tile: C[mr x NR] = corrected sum over k groups of A words x B panel vectors.

The accumulators stay in registers for the whole (unblocked) K, so a tile finishes in one call and
its epilogue runs on final values: either the i32 results are stored (matmul_integer,
conv2d_integer), or they get an i32 bias per column and are requantized to 8 bits in registers
(the fused matmul_integer + bias + requantize (+ relu) group), which writes int8 directly. A
requantize with a fused k x k max pool (conv rows in pool-window order: each k*k rows of the tile
are one window) takes the max of each window's biased sums and requantizes once: exact, as
requantize (+ relu) with a positive multiplier never decreases (the fuse-int8-pool pass checks it).
One function per (ISA, rows, full/edge columns, output); the edge variant masks column loads and
stores to `nvalid`, and rows past `mvalid` are computed from zero A words and never stored.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from .int8_isa import Int8Isa
from ..loops import (add_incoming, I1, I8, I32, I64, declare_intrinsic, gep, i64, imin, internal_function, lane_mask, load_vec,
                     masked_load, masked_store, optional_masked_load, splat, store_vec, zero)
from .microkernel import row_variants, tile_heights
from .quantmath import F32, bounds, round_saturate_i32, zero_point_f32

# packed B: b = the NR-column panel, colterm/bzv = its corrections (ldb, k, az, bzp unused);
# direct B (few rows): b = w at the tile's first column, row stride ldb, K = k, A zero point az
# (u8 space) and bzp = the B zero point(s) at that column: the tile interleaves B in registers and
# sums its columns itself (colterm/bzv unused; bz_per_col says whether bzp has one per column).
# Either way the tile computes the same numbers.
ARG_NAMES = ("kg", "a", "b", "rowsum", "colterm", "bzv", "c", "ldc", "nvalid", "mvalid", "ecol",
             "ldb", "k", "az", "bzp", "bz_per_col")
ARG_TYPES = [I64, I32.as_pointer(), I8.as_pointer(), I32.as_pointer(), I32.as_pointer(), I32.as_pointer(),
             None, I64, I64, I64, I64, I64, I64, I32, I8.as_pointer(), I1]
MODES = ("packed", "packed0", "direct")   # packed0: B's zero points are known to be zero (no row-sum term)
ONES = {4: 0x01010101, 2: 0x00010001, 1: 1}   # an A word of ones: its dot step sums the B column


class StoreI32:
    """Store the exact i32 sums."""

    key = ident = "i32"
    elem, nptrs = I32, 0

    def ptr_types(self):
        return []

    def kernel_types(self):
        return []

    def kernel_args(self, b, ptrs):
        return []

    def columns(self, b, col, kargs, mask, lanes):
        return None

    def apply(self, b, acc, cols, kargs):
        return acc


@dataclass(frozen=True)
class Requantize:
    """out = requantize(acc + bias[col], multiplier[col or 0], zero_point) as ir/ops/quant.py defines it.

    The options reach the micro-kernel as run-time arguments (a null bias, a per-column flag, the
    relu folded into the lower bound), so every requantizing GEMM shares one set of micro-kernels.
    """

    out_dtype: str        # i8 | u8
    bias: bool = False    # an i32 bias per column is added first
    per_col: bool = True  # a multiplier per column, else one for all
    relu: bool = False
    pool: int = 0         # k of a fused k x k max pool: each k*k tile rows are one window, one output row
    elem = I8

    @property
    def key(self) -> str:
        """Micro-kernels: shared by every requantize epilogue with the same pool window."""
        return f"rq{f'p{self.pool}' if self.pool else ''}"

    @property
    def window_rows(self) -> int:
        return self.pool * self.pool if self.pool else 1

    @property
    def ident(self) -> str:
        """The call site's variant (its kernel function's pointer arguments and constants differ)."""
        return (f"rq{self.out_dtype}{'b' if self.bias else ''}{'c' if self.per_col else 's'}{'r' if self.relu else ''}"
                + (f"p{self.pool}" if self.pool else ""))

    def window_max(self, b, rows, cols):
        """The max over a pool window's rows (vectors of one column block) of their biased sums, with
        the column vectors that add no bias again (the bias is in): max before the requantize."""
        bvec, m = cols
        best = None
        for acc in rows:
            v = b.add(acc, bvec)   # wraps as the reference's i32 add does, then the max
            best = v if best is None else b.select(b.icmp_signed(">", v, best), v, best)
        return best, (zero(bvec.type), m)

    @property
    def nptrs(self) -> int:
        return 2 + self.bias

    def ptr_types(self):
        """Kernel-function pointers: [bias i32*], multiplier f32*, zero point i8*."""
        return ([I32.as_pointer()] if self.bias else []) + [F32.as_pointer(), I8.as_pointer()]

    def kernel_types(self):
        return [I32.as_pointer(), F32.as_pointer(), I1, F32, F32, F32]

    def kernel_args(self, b, ptrs):
        """Read the zero point once per call: (bias or null, multiplier, per-column, zp, lo, hi)."""
        *bias, mult, zp = ptrs
        zpf = zero_point_f32(b, b.load(zp), self.out_dtype)
        lo, hi = bounds(b, zpf, self.out_dtype, self.relu)
        bias = bias[0] if bias else ir.Constant(I32.as_pointer(), None)
        return [bias, mult, ir.Constant(I1, self.per_col), zpf, lo, hi]

    def columns(self, b, col, kargs, mask, lanes):
        """(bias, multiplier) vectors of the columns at col: loaded once per tile, used by every row."""
        bias, mult, per_col, zpf, lo, hi = kargs
        live = ir.Constant(ir.VectorType(I1, lanes), [1] * lanes) if mask is None else mask
        present = b.icmp_unsigned("!=", bias, ir.Constant(bias.type, None))
        # plain (not inbounds) addresses: an absent operand's load reads elsewhere (optional_masked_load)
        bvec = optional_masked_load(b, b.gep(bias, [col]), present, live, lanes)
        per = optional_masked_load(b, b.gep(mult, [col]), per_col, live, lanes)
        return bvec, b.select(per_col, per, splat(b, b.load(mult), lanes))

    def apply(self, b, acc, cols, kargs):
        v = self.apply_i32(b, acc, cols, kargs)
        return b.trunc(v, ir.VectorType(I8, v.type.count))

    def apply_i32(self, b, acc, cols, kargs):
        """The requantized values as i32 (within the 8-bit type's range), before the truncation."""
        lanes = acc.type.count
        bias, mult, per_col, zpf, lo, hi = kargs
        bvec, m = cols
        acc = b.add(acc, bvec)
        r = b.fmul(b.sitofp(acc, ir.VectorType(F32, lanes)), m)
        return round_saturate_i32(b, r, splat(b, zpf, lanes), splat(b, lo, lanes), splat(b, hi, lanes))

    @staticmethod
    def pack_pair(b, v0, v1):
        """Two <8 x i32> vectors of values within [-128, 255] -> their 16 low bytes, with AVX2's packs:
        i32 -> i16 saturating (exact in that range), the low byte of each (& 0xff, so the unsigned
        saturating pack keeps it as it is). The tile is shared by i8 and u8 outputs: both come out
        right. LLVM's generic 8 x i32 -> 8 x i8 truncation takes about a dozen shuffles a vector."""
        v8x32, v16x16, v32x8 = (ir.VectorType(t, n) for t, n in ((I32, 8), (ir.IntType(16), 16), (I8, 32)))
        words = b.call(declare_intrinsic(b.module, "llvm.x86.avx2.packssdw", v16x16, [v8x32, v8x32]), [v0, v1])
        words = b.and_(words, ir.Constant(v16x16, [0xFF] * 16))
        both = b.call(declare_intrinsic(b.module, "llvm.x86.avx2.packuswb", v32x8, [v16x16, v16x16]), [words, words])
        # 128-bit lanes: [v0 0-3, v1 0-3 | v0 4-7, v1 4-7] (as dwords 0, 1 | 4, 5) -> v0 0-7, v1 0-7
        dwords = b.bitcast(both, v8x32)
        order = b.shuffle_vector(dwords, ir.Constant(v8x32, None), ir.Constant(ir.VectorType(I32, 4), [0, 4, 1, 5]))
        return b.bitcast(order, ir.VectorType(I8, 16))


def _load(b, ptr, mask, lanes):
    return load_vec(b, ptr, lanes) if mask is None else masked_load(b, ptr, mask, lanes)


def _types(out) -> list:
    return [t if t is not None else out.elem.as_pointer() for t in ARG_TYPES] + out.kernel_types()


def _shape(isa: Int8Isa, rows: bool = True) -> str:
    """MRxNR, and the panel width where the tile reads a strip of wider panels."""
    strip = f"of{isa.panel_nr}" if isa.panel_nr != isa.nr else ""
    return (f"{isa.mr}x" if rows else "") + f"{isa.nr}{strip}"


def tile_function(module: ir.Module, isa: Int8Isa, out, mode: str = "packed", kg: int | None = None) -> ir.Function:
    """`void (ARG_NAMES..., out args...)`: picks the variant for full or edge columns and the
    smallest height holding mvalid rows. kg: the k groups, when the call site's are static: the
    tile is then specialized (A's rows at constant offsets, no address arithmetic per k group; the
    `kg` argument is ignored)."""
    name = f"kc_i8tile_{isa.name}_{mode}_{_shape(isa)}_{out.key}" + (f"_k{kg}" if kg is not None else "")
    fn = internal_function(module, name, ir.VoidType(), _types(out), ARG_NAMES)
    if fn is None:
        return module.globals[name]
    fn.attributes.add("noinline")
    args = list(fn.args)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    full, edge = fn.append_basic_block("full"), fn.append_basic_block("edge")
    b.cbranch(b.icmp_signed("==", args[ARG_NAMES.index("nvalid")], i64(isa.nr)), full, edge)
    kk = getattr(out, "window_rows", 1)   # a pooled tile's heights are whole windows
    # AVX2's 6-row tile takes MR and powers of two below it (batch 64 leaves 4 rows: a 4-row kernel,
    # not a third of a 6-row one idle); the other paths halve MR (12 -> 6 ...) as before
    variants = tile_heights(isa.mr) if isa.name == "avx2" else row_variants(isa.mr)
    heights = [h for h in variants if h % kk == 0] + ([kk] if isa.mr > kk and kk > 1 and kk not in variants else [])
    for blk, is_edge in ((full, False), (edge, True)):
        b.position_at_end(blk)
        for rows, smaller in zip(heights, heights[1:] + [0]):
            use, nxt = fn.append_basic_block(f"rows{rows}"), fn.append_basic_block(f"below{rows}")
            b.cbranch(b.icmp_signed(">", args[ARG_NAMES.index("mvalid")], i64(smaller)), use, nxt)
            b.position_at_end(use)
            b.call(_microkernel(module, isa, rows, is_edge, out, mode, kg), args)
            b.ret_void()
            b.position_at_end(nxt)
        b.unreachable()
    return fn


def _microkernel(module, isa: Int8Isa, mr: int, edge: bool, out, mode: str, kg: int | None) -> ir.Function:
    name = (f"kc_i8ukr_{isa.name}_{mode}_{mr}x{_shape(isa, False)}_{'edge' if edge else 'full'}_{out.key}"
            + (f"_k{kg}" if kg is not None else ""))
    fn = internal_function(module, name, ir.VoidType(), _types(out), ARG_NAMES)
    if fn is None:
        return module.globals[name]
    fn.attributes.add("nounwind")
    _Tile(fn, isa, mr, edge, out, mode, kg).emit()
    return fn


class _Tile:
    def __init__(self, fn, isa: Int8Isa, mr: int, edge: bool, out, mode: str, kg: int | None = None):
        self.isa, self.mr, self.edge, self.out = isa, mr, edge, out
        self.direct = mode == "direct"
        self.bz_zero = mode == "packed0"
        self.a = {n: fn.args[i] for i, n in enumerate(ARG_NAMES)}
        if kg is not None:
            self.a["kg"] = i64(kg)
        self.kargs = list(fn.args[len(ARG_NAMES):])
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def emit(self):
        b, isa = self.b, self.isa
        masks = [lane_mask(b, b.sub(self.a["nvalid"], i64(v * isa.lanes)), isa.lanes) if self.edge else None
                 for v in range(isa.nv)]
        self.masks = masks
        acc = self._corrected(self._k_loop())
        self.cols = [self.out.columns(b, b.add(self.a["ecol"], i64(v * isa.lanes)), self.kargs, masks[v], isa.lanes)
                     for v in range(isa.nv)]
        if getattr(self.out, "pool", 0):
            self._store_windows(acc, masks)
            b.ret_void()
            return
        for r in range(self.mr):
            if r == 0:
                self._store_row(acc[r], r, masks)
                continue
            with b.if_then(b.icmp_signed("<", i64(r), self.a["mvalid"])):
                self._store_row(acc[r], r, masks)
        b.ret_void()

    def _k_loop(self):
        """for each k group: NV B vectors, MR broadcast A words, MR x NV dot steps (loop-carried)."""
        b, isa, a = self.b, self.isa, self.a
        vty = ir.VectorType(I32, isa.lanes)
        rows = [gep(b, a["a"], b.mul(i64(r), a["kg"])) for r in range(self.mr)]
        pre = b.block
        head, body, done = (b.append_basic_block(n) for n in ("g.head", "g.body", "g.done"))
        b.branch(head)
        b.position_at_end(head)
        g = b.phi(I64, "g")
        g.add_incoming(i64(0), pre)
        nrows = self.mr + self.direct   # direct B: one more row of ones sums the B columns
        acc = [[b.phi(vty) for _ in range(isa.nv)] for _ in range(nrows)]
        for row in acc:
            for phi in row:
                phi.add_incoming(zero(vty), pre)
        b.cbranch(b.icmp_signed("<", g, a["kg"]), body, done)
        b.position_at_end(body)
        bvecs = self._b_direct(g) if self.direct else self._b_packed(g)
        new = []
        for r in range(nrows):   # A is row-major: row r's words start at r * kg
            word = b.load(gep(b, rows[r], g)) if r < self.mr else ir.Constant(I32, ONES[isa.group])
            new.append([isa.dot(b, acc[r][v], word, bvecs[v]) for v in range(isa.nv)])
        g.add_incoming(b.add(g, i64(1)), b.block)
        add_incoming(acc, new, b.block)
        b.branch(head)
        b.position_at_end(done)
        return acc

    def _b_packed(self, g):
        b, isa = self.b, self.isa
        base = gep(b, self.a["b"], b.mul(g, i64(isa.kstride)))   # a strip: the panel's stride
        return [isa.load_b(b, gep(b, base, i64(v * isa.lanes * isa.group * isa.b_bytes))) for v in range(isa.nv)]

    def _b_direct(self, g):
        """`group` rows of row-major B per vector of columns, interleaved in registers; rows past K
        re-read row K-1 (never past the matrix) and are zeroed."""
        b, isa, a = self.b, self.isa, self.a
        out = []
        for v in range(isa.nv):
            rows = []
            for t in range(isa.group):
                kk = b.add(b.mul(g, i64(isa.group)), i64(t))
                row = b.mul(imin(b, kk, b.sub(a["k"], i64(1))), a["ldb"])
                raw = _load(b, gep(b, a["b"], b.add(row, i64(v * isa.lanes))), self.masks[v], isa.lanes)
                rows.append(b.select(b.icmp_signed("<", kk, a["k"]), raw, zero(raw.type)))
            out.append(isa.b_operand(b, isa.interleave(b, rows)))
        return out

    def _direct_corrections(self, colsum):
        """(colterm, bz) vectors from the in-register column sums: K*az*bz - az*colsum."""
        b, isa, a = self.b, self.isa, self.a
        vty = ir.VectorType(I32, isa.lanes)
        per_col = a["bz_per_col"]
        one = splat(b, b.sext(b.load(a["bzp"]), I32), isa.lanes)
        bz = []
        for v in range(isa.nv):
            live = ir.Constant(ir.VectorType(I1, isa.lanes), [1] * isa.lanes) if self.masks[v] is None else self.masks[v]
            per = optional_masked_load(b, b.gep(a["bzp"], [i64(v * isa.lanes)]), per_col, live, isa.lanes)
            bz.append(b.select(per_col, b.sext(per, vty), one))
        az = splat(b, a["az"], isa.lanes)
        kz = b.mul(az, splat(b, b.trunc(a["k"], I32), isa.lanes))
        return [b.sub(b.mul(kz, z), b.mul(az, s)) for z, s in zip(bz, colsum)], bz

    def _corrected(self, acc):
        """raw + colterm[c] - bz[c] * rowsum[r] (int8_pack.py derives it)."""
        b, isa, a = self.b, self.isa, self.a
        if self.direct:
            ct, bz = self._direct_corrections(acc[-1])
        else:
            ct = [load_vec(b, gep(b, a["colterm"], i64(v * isa.lanes)), isa.lanes) for v in range(isa.nv)]
            bz = [load_vec(b, gep(b, a["bzv"], i64(v * isa.lanes)), isa.lanes) for v in range(isa.nv)]
        if self.bz_zero:   # symmetric weights: the row sums meet zero B zero points
            return [[b.add(acc[r][v], ct[v]) for v in range(isa.nv)] for r in range(self.mr)]
        out = []
        for r in range(self.mr):
            rs = splat(b, b.load(gep(b, a["rowsum"], i64(r))), isa.lanes)
            out.append([b.sub(b.add(acc[r][v], ct[v]), b.mul(bz[v], rs)) for v in range(isa.nv)])
        return out

    def _store_windows(self, acc, masks):
        """Each whole window of rows (mvalid counts whole windows) as one output row."""
        b, kk = self.b, self.out.window_rows
        assert self.mr % kk == 0, f"a pooled tile of {self.mr} rows holds no whole {kk}-row windows"
        biased = self.cols
        for j in range(self.mr // kk):
            pairs = [self.out.window_max(b, [acc[r][v] for r in range(j * kk, (j + 1) * kk)], biased[v])
                     for v in range(self.isa.nv)]
            self.cols = [c for _, c in pairs]
            if j == 0:
                self._store_row([v for v, _ in pairs], 0, masks)
                continue
            with b.if_then(b.icmp_signed("<", i64(j * kk), self.a["mvalid"])):
                self._store_row([v for v, _ in pairs], j, masks)
        self.cols = biased

    def _store_row(self, vals, r, masks):
        b, isa, a = self.b, self.isa, self.a
        row = gep(b, a["c"], b.mul(i64(r), a["ldc"]))
        if isa.name == "avx2" and isa.nv <= 2 and not self.edge and hasattr(self.out, "pack_pair"):
            wide = [self.out.apply_i32(b, vals[v], self.cols[v], self.kargs) for v in range(isa.nv)]
            packed = self.out.pack_pair(b, wide[0], wide[-1])
            if isa.nv == 1:   # one vector packed with itself: its 8 bytes come first
                packed = b.shuffle_vector(packed, ir.Constant(packed.type, None),
                                          ir.Constant(ir.VectorType(I32, 8), list(range(8))))
            store_vec(b, packed, row)
            return
        for v in range(isa.nv):
            y = self.out.apply(b, vals[v], self.cols[v], self.kargs)
            ptr = gep(b, row, i64(v * isa.lanes))
            if masks[v] is None:
                store_vec(b, y, ptr)
            else:
                masked_store(b, y, ptr, masks[v])
