"""The int8 dot-product instruction set for a target: AVX-512 VNNI, exact AVX2, or portable vectors.

All three compute, per i32 lane (one output column), acc + sum over a group of `group` k values of
a_u8 * b_s8 exactly (A is in unsigned space: i8 activations are offset by 128 beforehand, and the
GEMM subtracts 128 * colsum(b) afterwards):

  vnni    `vpdpbusd` (llvm.x86.avx512.vpdpbusd.512): 16 columns x 4 k per instruction; its four
          u8 x s8 products and their sum fit in i32, the non-saturating form wraps like i32 adds.
  avx2    B sign-extended to 16 bits, A zero-extended to 16 bits, `vpmaddwd`
          (llvm.x86.avx2.pmadd.wd): 8 columns x 2 k; 255 * 128 * 2 fits i32, so it is exact.
          Never `vpmaddubsw`, whose i16 pair sums saturate (255 * 127 * 2 > 32767).
  generic sign/zero-extension to i32, multiply, add: any target LLVM supports (1 k per group).

The packed layouts follow from `group` and `b_bytes`: a B panel holds, per k group, NR columns x
`group` values of b_bytes each (AVX2: int16, widened once when packed, so its k loop has no
sign-extension); an A block holds, per row, one i32 word per k group (the group's A values: 4 u8,
2 u16 or one i32).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from llvmlite import ir

from ..loops import I8, I32, declare_intrinsic, load_vec, splat

I16 = ir.IntType(16)


def _has(features: str, name: str) -> bool:
    return f"+{name}" in features.split(",")


@dataclass(frozen=True)
class Int8Isa:
    name: str      # vnni | avx2 | generic
    group: int     # k values per i32 lane
    lanes: int     # i32 lanes per vector
    mr: int        # register tile rows
    nv: int        # vectors of columns per tile
    direct_mr: int = 0   # the direct path's tile (few rows, B read in place): rows ...
    direct_nv: int = 0   # ... and vectors of columns (wide: whole cache lines of B per row)
    panel_nv: int = 0    # vectors of columns per packed B panel when a tile reads a strip of it (0: nv)
    b_bytes: int = 1     # bytes per value in packed B panels: 2 where the dot takes 16-bit B (AVX2)

    @property
    def nr(self) -> int:
        return self.nv * self.lanes

    @property
    def kstride(self) -> int:
        """Bytes of one k group of a packed panel (per column: `group` values of b_bytes)."""
        return self.panel_nr * self.group * self.b_bytes

    @property
    def panel_nr(self) -> int:
        """Columns per packed B panel (the layout): the tile's own, or a panel it reads in strips."""
        return (self.panel_nv or self.nv) * self.lanes

    def pooled(self, window_rows: int) -> "Int8Isa":
        """The tile of a GEMM whose rows come in pool windows of `window_rows` (a height of whole
        windows). AVX2's 16 registers hold 6 x 2 vectors, so a 2x2 pool would get 4 x 2 (8 sums a
        k group for 2 B loads and 4 broadcasts); one vector-wide strip of the same panels, 3 windows
        tall (12 x 1), does 12 a k group for one B load and keeps three windows' epilogues in flight."""
        if self.name == "avx2" and self.nv == 2 and window_rows <= 6:
            return replace(self, nv=1, panel_nv=self.nv, mr=12 // window_rows * window_rows)
        return replace(self, mr=max(window_rows, self.mr // window_rows * window_rows))

    def direct(self) -> "Int8Isa":
        """The tile shape of the direct path (same instructions, its own rows and columns)."""
        return replace(self, mr=self.direct_mr or self.mr, nv=self.direct_nv or self.nv)

    def for_columns(self, n: int) -> "Int8Isa":
        """The tile for a GEMM of n columns: one vector wide and twice as tall when n fits one vector
        (a narrow convolution would otherwise compute and mask a whole empty vector per row)."""
        if n <= self.lanes and self.nv > 1:
            return replace(self, nv=1, mr=self.mr * self.nv)
        return self

    def load_b(self, b: ir.IRBuilder, ptr):
        """One vector of columns of a packed B panel at `ptr` (i8*): lanes x group values. AVX2's
        panels hold them sign-extended to 16 bits already (packing widens once; the k loop would
        otherwise spend a shuffle-port `vpmovsxbw` per B vector, ~7 % of the MLP's GEMM)."""
        if self.b_bytes == 2:
            raw = load_vec(b, ptr, self.lanes * self.group * 2)
            return b.bitcast(raw, ir.VectorType(I16, self.lanes * self.group))
        return self.b_operand(b, load_vec(b, ptr, self.lanes * self.group))

    def panel_values(self, b: ir.IRBuilder, raw):
        """Interleaved B bytes (lanes x group) as a packed panel stores them (widened where b_bytes is 2)."""
        return b.sext(raw, ir.VectorType(I16, raw.type.count)) if self.b_bytes == 2 else raw

    def b_operand(self, b: ir.IRBuilder, raw):
        """Interleaved B bytes (lanes x group) as the dot instruction's operand."""
        if self.name == "vnni":
            return b.bitcast(raw, ir.VectorType(I32, self.lanes))
        if self.name == "avx2":
            return b.sext(raw, ir.VectorType(I16, 2 * self.lanes))
        return b.sext(raw, ir.VectorType(I32, self.lanes))

    def dot(self, b: ir.IRBuilder, acc, a_word, bvec):
        """acc + (group dot products of the A word, broadcast, with each column of bvec)."""
        vi32 = ir.VectorType(I32, self.lanes)
        a = splat(b, a_word, self.lanes)
        if self.name == "vnni":
            fn = declare_intrinsic(b.module, "llvm.x86.avx512.vpdpbusd.512", vi32, [vi32] * 3)
            return b.call(fn, [acc, a, bvec])
        if self.name == "avx2":
            v16 = ir.VectorType(I16, 16)
            fn = declare_intrinsic(b.module, "llvm.x86.avx2.pmadd.wd", vi32, [v16, v16])
            return b.add(acc, b.call(fn, [b.bitcast(a, v16), bvec]))
        return b.add(acc, b.mul(a, bvec))

    def a_row(self, b: ir.IRBuilder, rowbuf, dst, span: int):
        """A row's i32 A words at dst (i32*) from its u8 values in rowbuf (span bytes, whole 16-byte
        chunks): vnni packs 4 u8 per word (the bytes as they are), avx2 2 u16, generic one i32.
        Writes span * 4 / group bytes: past the row's words, into the next row's (packed later)."""
        elem = {"vnni": I8, "avx2": I16, "generic": I32}[self.name]
        out = b.bitcast(dst, elem.as_pointer())
        for off in range(0, span, 16):
            v = load_vec(b, b.gep(rowbuf, [ir.Constant(ir.IntType(64), off)]), 16)
            wide = v if elem is I8 else b.zext(v, ir.VectorType(elem, 16))
            b.store(wide, b.bitcast(b.gep(out, [ir.Constant(ir.IntType(64), off)]), wide.type.as_pointer()), align=1)

    def interleave(self, b: ir.IRBuilder, rows):
        """`group` row vectors of `lanes` bytes -> the panel layout: column j's group bytes together."""
        if self.group == 1:
            return rows[0]
        while len(rows) > 1:   # concatenate pairwise (shufflevector joins equal widths)
            rows = [_concat(b, x, y) for x, y in zip(rows[::2], rows[1::2])]
        cat = rows[0]
        n = self.lanes
        return b.shuffle_vector(cat, ir.Constant(cat.type, None),
                                ir.Constant(ir.VectorType(I32, n * self.group), [t * n + j for j in range(n)
                                                                                 for t in range(self.group)]))

def _concat(b, x, y):
    """x ++ y for two vectors of one width."""
    n = x.type.count
    return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, 2 * n), list(range(2 * n))))


VNNI = Int8Isa("vnni", group=4, lanes=16, mr=12, nv=2, direct_mr=4, direct_nv=4)
AVX2 = Int8Isa("avx2", group=2, lanes=8, mr=6, nv=2, direct_mr=2, direct_nv=4, b_bytes=2)
GENERIC = Int8Isa("generic", group=1, lanes=4, mr=4, nv=2)
ISAS = {isa.name: isa for isa in (VNNI, AVX2, GENERIC)}


def int8_isa(features: str) -> Int8Isa:
    """The best exact int8 path the target's features allow (decided at compile time)."""
    if all(_has(features, f) for f in ("avx512f", "avx512bw", "avx512vnni")):
        return VNNI
    if _has(features, "avx2"):
        return AVX2
    return GENERIC
