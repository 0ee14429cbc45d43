"""The register-blocked GEMM micro-kernel: C[mr x NR] (+)= A[mr x kc] @ B[kc x NR] with vector FMAs.

A is read as scalars a[r*rsa + k*csa] (a packed panel has rsa=1, csa=MR; an unpacked row-major
matrix rsa=lda, csa=1) broadcast to all lanes; B as NR/lanes vectors from b[k*rsb + j] (a packed
panel has rsb=NR).  The accumulators live in registers for the whole k loop.  One function per
(dtype, rows mr, full/edge columns, epilogue); the edge variant masks loads and stores to `nvalid`
columns, and rows past `mvalid` re-read the last valid row and are not stored, so a kernel never
touches memory past the tile.  A few row counts (MR and the powers of two below it) cover every tile height.
"""
from __future__ import annotations

from llvmlite import ir

from .epilogue import Epilogue
from ..kernel_library import EXPLICIT_VECTOR_OPT_LEVEL, library_kernel
from ..loops import (add_incoming, I1, I64, fma, gep, i64, imin, is_float, lane_mask, load_vec,
                     masked_load, masked_store, splat, store_vec, type_suffix, zero)

# Independent FMA chains needed to keep the FMA units busy (latency 4 x 2 units).
MIN_CHAINS = 8

ARG_NAMES = ("kc", "a", "rsa", "csa", "b", "rsb", "c", "ldc", "nvalid", "accumulate", "last",
             "row0", "col0", "mvalid")
_ARG_TYPES = lambda ptr: [I64, ptr, I64, I64, ptr, I64, ptr, I64, I64, I1, I1, I64, I64, I64]


def row_variants(mr_max: int) -> list:
    """Micro-kernel heights, largest first: MR, MR/2, ... 1 (a tile uses the smallest that fits)."""
    out, r = [], mr_max
    while r > 1:
        out.append(r)
        r = -(-r // 2)
    return out + [1]


def tile_heights(mr_max: int) -> list:
    """The f32/f64 GEMM's micro-kernel heights: MR, then the powers of two below it (12 -> 12, 8, 4, 2, 1).

    As many variants as halving MR, but a batch's leftover rows are wasted less: the convnet's and
    the MLP's row counts at batch 64 and 256 leave 4 rows past the 12-row tiles, which ran in a
    6-row kernel (a third of it idle) before."""
    out, r = [mr_max], 1 << max(0, (mr_max - 1).bit_length() - 1)
    while r >= 1:
        if r < mr_max:
            out.append(r)
        r //= 2
    return out


def microkernel_name(elem: ir.Type, mr: int, nr: int, edge: bool, epi: Epilogue) -> str:
    return f"kc_ukr_{type_suffix(elem)}_{mr}x{nr}_{'edge' if edge else 'full'}_{epi.key}"


def microkernel(module: ir.Module, elem: ir.Type, lanes: int, mr: int, nr: int, edge: bool,
                epi: Epilogue, emitter=None, tag: str = "") -> ir.Function:
    """Get or emit the micro-kernel for one variant (`emitter`, named by `tag`: another A access)."""
    name = microkernel_name(elem, mr, nr, edge, epi) + (f"_{tag}" if tag else "")
    ptr = elem.as_pointer()
    args = _ARG_TYPES(ptr) + epi.kernel_types(elem)
    made = library_kernel(module, name, ir.VoidType(), args, ARG_NAMES, EXPLICIT_VECTOR_OPT_LEVEL)
    if made is None:
        return module.globals[name]
    fn, emit_body = made
    fn.attributes.add("nounwind")
    # shared by every GEMM of the module: inlining ~30 variants into each caller only costs compile time
    fn.attributes.add("noinline")
    if emit_body:
        (emitter or _Emitter)(fn, elem, lanes, mr, nr, edge, epi).emit()
    return fn


def tile_variants(n: int, nr: int, m: int | None, mr_max: int, fewest: bool = False):
    """(column kinds, heights) a GEMM with N = n and M = m (None: run-time) can ever call.

    Block and thread boundaries are multiples of MR and NR, so only the last row/column tiles are
    partial (the caller widens this for a tile shape whose NR the thread split does not respect).
    fewest: MR rows only for a run-time M (an MR-row kernel computes any mvalid <= MR and stores
    mvalid rows): the tiered JIT's tier 0 (compiler/tier_up.py), for which generating and compiling
    four more heights costs more than the rows they save.
    """
    cols = (("full",) if n >= nr else ()) + (("edge",) if n % nr else ())
    heights = [mr_max] if fewest else tile_heights(mr_max)
    if m is not None:
        rest = m % mr_max
        heights = ([mr_max] if m >= mr_max else []) + ([min(h for h in heights if h >= rest)] if rest else [])
    return cols, tuple(heights)


def tile_function(module: ir.Module, elem: ir.Type, lanes: int, mr_max: int, nr: int, epi: Epilogue,
                  variants=None, kernel=None, tag: str = ""):
    """`void (micro-kernel args...)`: calls the variant for `mvalid` rows and full or partial columns.

    One per module, tile shape and set of variants, shared by the GEMMs, so each GEMM has one call
    site per tile (loop unswitching in the callers then stays cheap to compile).
    """
    cols, heights = variants or (("full", "edge"), tuple(tile_heights(mr_max)))
    key = "".join(c[0] for c in cols) + "_".join(map(str, heights))
    name = f"kc_tile_{type_suffix(elem)}_{mr_max}x{nr}_{epi.key}_{key}" + (f"_{tag}" if tag else "")
    ptr = elem.as_pointer()
    made = library_kernel(module, name, ir.VoidType(), _ARG_TYPES(ptr) + epi.kernel_types(elem), ARG_NAMES,
                          EXPLICIT_VECTOR_OPT_LEVEL)
    if made is None:
        return module.globals[name]
    fn, emit_body = made
    fn.attributes.add("noinline")
    if not emit_body:
        return fn
    args = list(fn.args)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    blocks = {c: fn.append_basic_block(c) for c in ("full", "edge")}
    b.cbranch(b.icmp_signed("==", args[ARG_NAMES.index("nvalid")], i64(nr)), blocks["full"], blocks["edge"])
    for kind, blk in blocks.items():
        b.position_at_end(blk)
        if kind in cols:
            _dispatch_rows(b, module, elem, lanes, nr, kind == "edge", epi, heights, args, kernel or microkernel)
        b.unreachable()
    return fn


def _dispatch_rows(b, module, elem, lanes, nr, edge, epi, heights, args, kernel):
    """The smallest available height that holds mvalid rows."""
    mr = args[ARG_NAMES.index("mvalid")]
    for rows, smaller in zip(heights, heights[1:] + (0,)):
        use, nxt = b.function.append_basic_block(f"rows{rows}"), b.function.append_basic_block(f"below{rows}")
        b.cbranch(b.icmp_signed(">", mr, i64(smaller)), use, nxt)
        b.position_at_end(use)
        b.call(kernel(module, elem, lanes, rows, nr, edge, epi), args)
        b.ret_void()
        b.position_at_end(nxt)


class _Emitter:
    def __init__(self, fn, elem, lanes, mr, nr, edge, epi):
        self.fn, self.elem, self.lanes, self.mr, self.nv = fn, elem, lanes, mr, nr // lanes
        self.edge, self.epi = edge, epi
        self.a = {n: fn.args[i] for i, n in enumerate(ARG_NAMES)}
        self.kargs = list(fn.args[len(ARG_NAMES):])
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def emit(self):
        b = self.b
        self.masks = self._masks() if self.edge else [None] * self.nv
        vals = self._with_c(self._k_loop())
        if self.epi.key != "none":
            # the epilogue is cheap next to a kc-long k loop: compute it always, keep it on the last block
            done = self._epilogue(vals)
            vals = [[b.select(self.a["last"], x, y) for x, y in zip(r1, r2)] for r1, r2 in zip(done, vals)]
        # an epilogue may store the tile its own way (a fused max pool: kernels/conv_pool.py)
        write = getattr(self.epi, "write_tile", None)
        write(self, vals) if write else self._write(vals)
        b.ret_void()

    def _masks(self):
        b, nvalid = self.b, self.a["nvalid"]
        return [lane_mask(b, b.sub(nvalid, i64(v * self.lanes)), self.lanes) for v in range(self.nv)]

    def _k_loop(self):
        """k loop with the accumulators as loop-carried values (they stay in registers).

        With few rows there are too few independent FMA chains to hide the FMA latency, so the loop
        is unrolled over `split` k steps into separate accumulator sets, summed at the end; but only
        in a GEMM's first tile (row0 == 0: M fits one tile, a GEMV-like call). A partial last tile of
        a taller GEMM sums k in order like the full tiles, so a row's result does not depend on where
        the batch is cut (batch chunks, predict's batches) or on the tile height it lands in.
        """
        b, a = self.b, self.a
        split = max(1, -(-MIN_CHAINS // (self.mr * self.nv)))
        rows = [gep(b, a["a"], b.mul(self._row(r), a["rsa"])) for r in range(self.mr)]
        if split == 1:
            return self._loop(i64(0), a["kc"], 1, rows, [self._zeros()])[0]
        ends = []
        with b.if_else(b.icmp_signed("==", a["row0"], i64(0))) as (first, later):
            with first:
                ends.append((self._split_loops(split, rows), b.block))
            with later:
                ends.append((self._loop(i64(0), a["kc"], 1, rows, [self._zeros()])[0], b.block))
        return self._merge(*ends)

    def _merge(self, one, other):
        """Per accumulator, a phi of the values (acc, block) two branches reached the merge with."""
        (acc1, block1), (acc2, block2) = one, other
        out = []
        for r1, r2 in zip(acc1, acc2):
            out.append([])
            for x, y in zip(r1, r2):
                phi = self.b.phi(x.type)
                phi.add_incoming(x, block1)
                phi.add_incoming(y, block2)
                out[-1].append(phi)
        return out

    def _split_loops(self, split, rows):
        b, a = self.b, self.a
        main_end = b.sub(a["kc"], b.srem(a["kc"], i64(split)))
        sets = self._loop(i64(0), main_end, split, rows, [self._zeros()] * split)
        acc = self._loop(main_end, a["kc"], 1, rows, [sets[0]])[0]
        for other in sets[1:]:
            add = b.fadd if is_float(self.elem) else b.add
            acc = [[add(x, y) for x, y in zip(r1, r2)] for r1, r2 in zip(acc, other)]
        return acc

    def _zeros(self):
        vty = ir.VectorType(self.elem, self.lanes)
        return [[zero(vty)] * self.nv for _ in range(self.mr)]

    def _loop(self, start, stop, step, rows, init):
        """for k in [start, stop) step `step`: accumulator set s takes k + s."""
        b = self.b
        pre = b.block
        head, body, done = (b.append_basic_block(n) for n in ("k.head", "k.body", "k.done"))
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64, "k")
        k.add_incoming(start, pre)
        sets = [[[self._phi(v, pre) for v in row] for row in acc] for acc in init]
        b.cbranch(b.icmp_signed("<", k, stop), body, done)
        b.position_at_end(body)
        new = [self._fma_step(b.add(k, i64(s)), rows, acc) for s, acc in enumerate(sets)]
        k.add_incoming(b.add(k, i64(step)), b.block)
        add_incoming(sets, new, b.block)
        b.branch(head)
        b.position_at_end(done)
        return sets

    def _phi(self, value, pre):
        phi = self.b.phi(value.type)
        phi.add_incoming(value, pre)
        return phi

    def _fma_step(self, k, rows, acc):
        b, a = self.b, self.a
        brow = gep(b, a["b"], b.mul(k, a["rsb"]))
        bv = [self._load(gep(b, brow, i64(v * self.lanes)), self.masks[v]) for v in range(self.nv)]
        koff = b.mul(k, a["csa"])
        out = []
        for r in range(self.mr):
            av = splat(b, b.load(gep(b, rows[r], koff)), self.lanes)
            out.append([fma(b, av, bv[v], acc[r][v]) for v in range(self.nv)])
        return out

    def _load(self, ptr, mask):
        return load_vec(self.b, ptr, self.lanes) if mask is None else masked_load(self.b, ptr, mask, self.lanes)

    def _row(self, r):
        """Row r, or the last valid row for rows past mvalid (read, never stored)."""
        return i64(0) if r == 0 else imin(self.b, r, self.b.sub(self.a["mvalid"], i64(1)))

    def _cptr(self, r, v):
        b = self.b
        return gep(b, self.a["c"], b.add(b.mul(self._row(r), self.a["ldc"]), i64(v * self.lanes)))

    def _with_c(self, acc):
        """acc + C when accumulating into C, else acc (C is only read when accumulating)."""
        b = self.b
        add = b.fadd if is_float(self.elem) else b.add
        pre = b.block
        with b.if_then(self.a["accumulate"]):
            added = [[add(acc[r][v], self._load(self._cptr(r, v), self.masks[v])) for v in range(self.nv)]
                     for r in range(self.mr)]
            then = b.block
        return self._merge((acc, pre), (added, then))

    def _epilogue(self, vals):
        b, a = self.b, self.a
        return [[self.epi.apply(b, vals[r][v], b.add(a["row0"], i64(r)),
                                b.add(a["col0"], i64(v * self.lanes)), self.kargs, self.masks[v])
                 for v in range(self.nv)] for r in range(self.mr)]

    def _write(self, vals):
        b = self.b
        for r in range(self.mr):
            if r == 0:
                self._write_row(vals, r)
                continue
            with b.if_then(b.icmp_signed("<", i64(r), self.a["mvalid"])):
                self._write_row(vals, r)

    def _write_row(self, vals, r):
        for v in range(self.nv):
            ptr, mask = self._cptr(r, v), self.masks[v]
            if mask is None:
                store_vec(self.b, vals[r][v], ptr)
            else:
                masked_store(self.b, vals[r][v], ptr, mask)
