"""One (batch item, head) of softmax(Q K^T) V in blocks of MR query rows, every step in registers or L1.

Per block of MR rows (MR x 2 vectors of accumulators fill the register file): the scores row block
[MR x S] = Q rows @ K^T, column chunk by column chunk (2 vectors wide), each chunk's accumulators
stored to a small stack block [MR x S'] (S' = S rounded up to a vector) and max-folded on the way out
of the registers; then exp(score - row max) in place with the row sums (the MR rows' exps interleaved,
so their polynomials overlap); then Y rows = exp block @ V, each output vector scaled by 1/row sum
as it leaves the registers (the probabilities are never normalized in memory). The block and K^T
([D x S'], transposed once per head in register tiles) stay in L1/L2; Q, V and Y are read and written
in place through the heads-in-the-middle strides. Columns past S (and past Dv) are masked: scores
there are -inf, so their exps are 0.

Compared with the two packed GEMMs and a softmax pass over a [T x S] buffer it replaces, nothing is
packed, the [T x S] scores never leave the caches, and the softmax's third pass (scale) is gone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

from ..loops import (add_incoming, FAST, I64, const, entry_alloca, fma, for_range, gep, hreduce, i64,
                     internal_function, lane_mask, load_vec, masked_load, masked_store, splat, store_vec)
from .config import vector_bits, vector_registers

F32 = ir.FloatType()
NV = 2   # vectors of columns per register tile


@dataclass(frozen=True)
class HeadShape:
    """One head's sizes and the element strides between rows of Q/K (h*d) and of V/Y (h*dv)."""

    t: int
    s: int
    h: int
    d: int
    dv: int
    lanes: int

    @property
    def padded_s(self) -> int:
        return -(-self.s // self.lanes) * self.lanes

    @property
    def qk_stride(self) -> int:
        return self.h * self.d

    @property
    def vy_stride(self) -> int:
        return self.h * self.dv


def block_rows(features: str) -> int:
    """MR: rows whose MR x NV accumulators, NV operand vectors and one broadcast fit the registers."""
    return min((vector_registers(features) - NV - 1) // NV, 12)


def row_blocks(t: int, mr: int) -> tuple:
    """(full MR blocks, heights of the static remainder blocks: powers of two, largest first)."""
    rest, heights, r = t % mr, [], 1 << max(0, mr.bit_length() - 1)
    while r >= 1:
        if rest >= r:
            heights.append(r)
            rest -= r
        r //= 2
    return t // mr, tuple(heights)


def block_function(module: ir.Module, prefix: str, hs: HeadShape, mr: int) -> ir.Function:
    """`void f(f32* q, f32* kt, f32* v, f32* y, f32* block)` for `mr` query rows of one head:
    q/y point at the block's first row, kt at the head's K^T [D x S'], v at the head's first V row."""
    name = f"{prefix}.rows{mr}"
    ptr = F32.as_pointer()
    fn = internal_function(module, name, ir.VoidType(), [ptr] * 5, ["q", "kt", "v", "y", "block"])
    if fn is None:
        return module.globals[name]
    fn.attributes.add("noinline")   # one copy per height, called from every row block
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    _RowBlock(b, hs, mr, *fn.args).emit()
    b.ret_void()
    return fn


class _RowBlock:
    def __init__(self, b, hs: HeadShape, mr: int, q, kt, v, y, block):
        self.b, self.hs, self.mr, self.lanes = b, hs, mr, hs.lanes
        self.q, self.kt, self.v, self.y, self.block = q, kt, v, y, block
        self.vty = ir.VectorType(F32, hs.lanes)

    def emit(self):
        maxes = self._scores()
        inv = self._exp_rows(maxes)
        self._mix(inv)

    # -- column chunks: full NV-vector chunks in a loop, then one static partial chunk ------------
    def _chunks(self, width: int, body):
        """body(c0, masks) per chunk of NV vectors over `width` columns; masks[j] None = full vector."""
        b, cw = self.b, NV * self.lanes
        full = width // cw * cw
        if full:
            with for_range(b, 0, full, cw, "attn.chunk") as c0:
                body(c0, [None] * NV)
        tail = width - full
        if tail:
            nvec = -(-tail // self.lanes)
            masks = [None if (j + 1) * self.lanes <= tail else lane_mask(b, i64(tail - j * self.lanes), self.lanes)
                     for j in range(nvec)]
            body(i64(full), masks)

    def _k_loop(self, count: int, step):
        """accumulators[mr][nvec] after `count` steps of step(k, accumulators) (loop-carried phis)."""
        b = self.b
        pre = b.block
        head, body, done = (b.append_basic_block(n) for n in ("attn.k.head", "attn.k.body", "attn.k.done"))
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64, "k")
        k.add_incoming(i64(0), pre)
        accs = [[b.phi(self.vty) for _ in range(self.nvec)] for _ in range(self.mr)]
        for row in accs:
            for phi in row:
                phi.add_incoming(const(self.vty, 0.0), pre)
        b.cbranch(b.icmp_signed("<", k, i64(count)), body, done)
        b.position_at_end(body)
        new = step(k, accs)
        k.add_incoming(b.add(k, i64(1)), b.block)
        add_incoming(accs, new, b.block)
        b.branch(head)
        b.position_at_end(done)
        return accs

    def _load(self, ptr, mask):
        return load_vec(self.b, ptr, self.lanes) if mask is None else masked_load(self.b, ptr, mask, self.lanes)

    def _tile(self, masks, depth: int, b_row, a_rows):
        """The register tile sum over k < depth of a_rows[r][k] (broadcast) * the vectors at b_row(k)
        (one per mask; a masked vector reads only its valid lanes): accs[mr][len(masks)]."""
        b = self.b
        self.nvec = len(masks)

        def step(k, accs):
            row = b_row(k)
            bvecs = [self._load(gep(b, row, i64(j * self.lanes)), m) for j, m in enumerate(masks)]
            out = []
            for r in range(self.mr):
                a = splat(b, b.load(gep(b, a_rows[r], k)), self.lanes)
                out.append([fma(b, a, bv, acc) for bv, acc in zip(bvecs, accs[r])])
            return out

        return self._k_loop(depth, step)

    # -- 1: scores block and running row maxima ---------------------------------------------------
    def _scores(self):
        b, hs = self.b, self.hs
        slots = [entry_alloca(b, self.vty, name="attn.max") for _ in range(self.mr)]
        for slot in slots:
            b.store(const(self.vty, -math.inf), slot)
        q_rows = [gep(b, self.q, r * hs.qk_stride) for r in range(self.mr)]

        def chunk(c0, masks):
            accs = self._tile(masks, hs.d, lambda k: gep(b, self.kt, b.add(b.mul(k, i64(hs.padded_s)), c0)), q_rows)
            for r in range(self.mr):
                for j, (acc, m) in enumerate(zip(accs[r], masks)):
                    val = acc if m is None else b.select(m, acc, const(self.vty, -math.inf))
                    store_vec(b, val, gep(b, self.block, b.add(c0, i64(r * hs.padded_s + j * self.lanes))))
                    b.store(_max(b, b.load(slots[r]), val), slots[r])

        self._chunks(hs.s, chunk)
        return [hreduce(b, b.load(slot), _max) for slot in slots]

    # -- 2: exp(score - max) in place, row sums -----------------------------------------------------
    def _exp_rows(self, maxes):
        from ..lower import mathfns   # (the vector exp lives with the lowerings' math functions)
        b, hs = self.b, self.hs
        sums = [entry_alloca(b, self.vty, name="attn.sum") for _ in range(self.mr)]
        for slot in sums:
            b.store(const(self.vty, 0.0), slot)
        shifts = [splat(b, m, self.lanes) for m in maxes]
        with for_range(b, 0, hs.padded_s, self.lanes, "attn.exp") as c:
            for r in range(self.mr):   # the rows' exps are independent: their latencies overlap
                at = gep(b, self.block, b.add(c, i64(r * hs.padded_s)))
                e = mathfns.exp_nonpositive(b, b.fsub(load_vec(b, at, self.lanes), shifts[r]))
                store_vec(b, e, at)
                b.store(b.fadd(b.load(sums[r]), e, flags=FAST), sums[r])
        add = lambda bb, x, y: bb.fadd(x, y, flags=FAST)
        return [splat(b, b.fdiv(ir.Constant(F32, 1.0), hreduce(b, b.load(s), add)), self.lanes) for s in sums]

    # -- 3: Y rows = exps @ V, scaled by 1/sum --------------------------------------------------------
    def _mix(self, inv):
        b, hs = self.b, self.hs
        p_rows = [gep(b, self.block, r * hs.padded_s) for r in range(self.mr)]

        def chunk(c0, masks):
            accs = self._tile(masks, hs.s, lambda k: gep(b, self.v, b.add(b.mul(k, i64(hs.vy_stride)), c0)), p_rows)
            for r in range(self.mr):
                for j, (acc, m) in enumerate(zip(accs[r], masks)):
                    at = gep(b, self.y, b.add(c0, i64(r * hs.vy_stride + j * self.lanes)))
                    val = b.fmul(acc, inv[r])
                    if m is None:
                        store_vec(b, val, at)
                    else:
                        masked_store(b, val, at, m)

        self._chunks(hs.dv, chunk)


def _max(b, x, y):
    """x > y ? x : y, one vmaxps (a NaN score makes its row's sum, hence its outputs, NaN anyway)."""
    return b.select(b.fcmp_ordered(">", x, y), x, y)


def head_shape(features: str, t: int, s: int, h: int, d: int, dv: int) -> HeadShape:
    return HeadShape(t, s, h, d, dv, vector_bits(features) // 32)
