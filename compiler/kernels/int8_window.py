"""A convolution's A rows in the window-row layout (passes/int8_window.py): one contiguous copy per
kernel row from the NHWC input straight into the packed A words, no row buffer and no per-tap copies.

A convolution with few input channels (the first layer of an image model: cin = 1 or 3) spends most
of its int8 time packing A with the generic window source (int8_pack.WindowRows): one copy per tap
of cin bytes, then a second pass to words. Here a pixel's words are `kh` copies of `span` bytes
(xor 0x80 for i8 activations; widened to u16 pairs on AVX2, to i32 on the portable path). Its weight
is always prepacked in the same layout, so the bytes that are not the window's meet zero weights.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from llvmlite import ir

from kcompile.passes.int8_window import row_starts, span_bytes

from .geometry import Geometry
from .int8_isa import Int8Isa
from ..loops import I8, I32, I64, entry_alloca, for_range, gep, i64, intrinsic, load_vec

WIDE = {"vnni": I8, "avx2": ir.IntType(16), "generic": I32}   # one A byte's element in the packed words


@dataclass(frozen=True)
class WindowWords:
    geo: Geometry
    signed: bool
    group: int          # the ISA's k group: the layout's span depends on it
    pool: int = 0       # k of a fused k x k max pool: rows in pool-window order (int8_pack.conv_pixel)

    @property
    def span(self) -> int:
        g = self.geo
        return span_bytes(g.kw, g.c, self.group)

    @property
    def k(self) -> int:
        """The layout's K (what the packed A and B hold)."""
        return self.geo.kh * self.span

    @property
    def real_k(self) -> int:
        """The products a result sums (the zero-point terms count these)."""
        g = self.geo
        return g.kh * g.kw * g.c

    def pack_rows(self, b, isa: Int8Isa, x, m0, mc, kgroups: int, apack, rowsum, need_sums):
        """Rows [m0, m0 + mc) into apack (row-major, kgroups words a row), padded with zero rows to
        whole MR tiles; rowsum[row] = the sum of the window's u8-space bytes when need_sums, else 0.
        The pixel's position is stepped along the rows (no division per row); with a pool, along the
        windows (m0 and mc are whole windows: tiles are), the k*k pixels of each at constant offsets."""
        g, span = self.geo, self.span
        offsets = self._window_offsets()
        per = len(offsets)
        starts = row_starts(g.kh, g.kw, g.c, self.group)
        wide = WIDE[isa.name]
        per_word = 4 // (wide.width // 8)           # elements of `wide` per i32 word
        out = b.bitcast(apack, wide.as_pointer())
        pos = [entry_alloca(b, I64) for _ in range(3)]   # ow, oh, byte offset of the window
        for slot, v in zip(pos, self._position(b, b.sdiv(m0, i64(per)))):
            b.store(v, slot)
        with for_range(b, 0, b.sdiv(mc, i64(per)), name="a.win") as step:
            first = b.load(pos[2])
            for t, offset in enumerate(offsets):
                r, base = b.add(b.mul(step, i64(per)), i64(t)), b.add(first, i64(offset))
                words = b.mul(r, i64(kgroups))
                for kr, start in enumerate(starts):
                    src = gep(b, x, b.add(base, i64(kr * g.dh * g.w * g.c + start)))
                    dst = gep(b, out, b.mul(b.add(words, i64(kr * span // self.group)), i64(per_word)))
                    self._copy(b, src, dst, span, wide)
                b.store(ir.Constant(I32, 0), gep(b, rowsum, r))
                with b.if_then(need_sums):
                    b.store(self._real_sum(b, x, base), gep(b, rowsum, r))
            self._step(b, pos)
        tiles = b.mul(b.sdiv(b.add(mc, i64(isa.mr - 1)), i64(isa.mr)), i64(isa.mr))
        with for_range(b, mc, tiles, name="a.dead") as r:   # the last tile's rows past mc: zero
            b.store(ir.Constant(I32, 0), gep(b, rowsum, r))
            with for_range(b, 0, kgroups, name="a.zero") as w:
                b.store(ir.Constant(I32, 0), gep(b, apack, b.add(b.mul(r, i64(kgroups)), w)))

    def _walk(self) -> Geometry:
        """What the rows step over: the output pixels, or with a pool the pool windows (as the pixels
        of a convolution k times the stride, whose last rows and columns 'valid' pooling drops)."""
        g, k = self.geo, self.pool
        return replace(g, oh=g.oh // k, ow=g.ow // k, sh=g.sh * k, sw=g.sw * k) if k else g

    def _window_offsets(self) -> list:
        """Byte offsets in x of a pool window's k*k pixels (row-major) from its first ([0]: no pool)."""
        g, k = self.geo, max(1, self.pool)
        return [((t // k) * g.sh * g.w + t % k * g.sw) * g.c for t in range(k * k)]

    def _position(self, b, row):
        """(ow, oh, byte offset in x of the window's first tap) of output pixel (or pool window) `row`."""
        g = self._walk()
        pix = b.srem(row, i64(g.oh * g.ow))
        n, oh, ow = b.sdiv(row, i64(g.oh * g.ow)), b.sdiv(pix, i64(g.ow)), b.srem(pix, i64(g.ow))
        ih, iw = b.mul(oh, i64(g.sh)), b.mul(ow, i64(g.sw))
        return ow, oh, b.mul(b.add(b.mul(b.add(b.mul(n, i64(g.h)), ih), i64(g.w)), iw), i64(g.c))

    def _step(self, b, pos):
        """The next pixel (or pool window): along the output row, then to the next row, then to the next image."""
        g = self._walk()
        ow, oh, base = (b.load(p) for p in pos)
        next_row = b.icmp_signed("==", b.add(ow, i64(1)), i64(g.ow))
        oh1 = b.add(oh, b.zext(next_row, I64))
        next_image = b.icmp_signed("==", oh1, i64(g.oh))
        jump = b.add(i64(g.sw * g.c), b.select(next_row, i64((g.sh * g.w - g.ow * g.sw) * g.c), i64(0)))
        jump = b.add(jump, b.select(next_image, i64((g.h - g.oh * g.sh) * g.w * g.c), i64(0)))
        b.store(b.select(next_row, i64(0), b.add(ow, i64(1))), pos[0])
        b.store(b.select(next_image, i64(0), oh1), pos[1])
        b.store(b.add(base, jump), pos[2])

    def _chunks(self, n: int):
        """(offset, width) pieces of n bytes: 16-byte vectors, then halving widths."""
        off, width = 0, 16
        while off < n:
            while width > n - off:
                width //= 2
            yield off, width
            off += width

    def _u8(self, b, src, off: int, width: int):
        v = load_vec(b, gep(b, src, i64(off)), width)
        return b.xor(v, ir.Constant(v.type, [0x80] * width)) if self.signed else v

    def _copy(self, b, src, dst, n: int, wide):
        """dst[0:n] = the n bytes at src in u8 space, each widened to `wide`."""
        for off, width in self._chunks(n):
            v = self._u8(b, src, off, width)
            if wide is not I8:
                v = b.zext(v, ir.VectorType(wide, width))
            b.store(v, b.bitcast(gep(b, dst, i64(off)), v.type.as_pointer()), align=1)

    def _real_sum(self, b, x, base):
        """The sum of the window's real bytes in u8 space (not the bytes a copy takes beyond them)."""
        g = self.geo
        total = ir.Constant(I32, 0)
        for kr in range(g.kh):
            src = gep(b, x, b.add(base, i64(kr * g.dh * g.w * g.c)))
            for off, width in self._chunks(g.kw * g.c):
                v = b.zext(self._u8(b, src, off, width), ir.VectorType(I32, width))
                total = b.add(total, intrinsic(b, "llvm.vector.reduce.add", [v], I32))
        return total
