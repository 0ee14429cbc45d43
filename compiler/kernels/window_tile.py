"""Unpacked implicit-GEMM A for unpadded convolutions: micro-kernels that read the input windows in place.

For a convolution whose windows all lie inside the input (no padding), with dilation 1 along W and
one group, row i = (n, oh, ow) of the implicit A, restricted to one kernel row kh, is a contiguous run
of kw*cin values of x: x[n, oh*sh + kh*dh, ow*sw : ow*sw + kw, :].  So the micro-kernel needs no
packed A panel: it computes each of its MR rows' start in x once per tile and walks kh runs of kw*cin
contiguous values, the same broadcast-FMA loop as the packed kernel (microkernel.py).

Why: packing the windows (im2col into A panels) cost 6-8 % of the MNIST convnet's 13x13x32->64 layer
and 3 % of its 5x5x64->128 one (the packed kernel itself runs at ~98 % of the FMA peak on L2-resident
panels); read in place, neighbouring windows share their input in L1.  The whole K is one block
(kc = K: a second block would re-read C), so B panels are K x NR and the column block NC shrinks to
keep the packed-B buffer KC x NC the size of the normal one.
"""
from __future__ import annotations

from dataclasses import replace

from .config import GemmShape
from .geometry import Geometry
from ..loops import I64, add_incoming, elem_bytes, entry_alloca, for_range, gep, i64, imin, prefetch
from .microkernel import _Emitter, microkernel, tile_function

# Largest K (in multiples of the normal KC) read as one block: B's K x NR panels stream from L2.
MAX_KC_BLOCKS = 4
# The tile's C lines are asked for in this many groups of rows, one at the start of each of the first
# kernel rows (a 3x3 convolution: a third of the k loop apart), not all at its start (measured below).
C_PREFETCH_GROUPS = 3
CACHE_LINE = 64


def use_window(geo: Geometry, shape: GemmShape, is_float: bool) -> bool:
    """Every window inside the input, contiguous (kw, ci) runs, one group, a GEMM worth tiling.

    At least one vector of output channels: narrower outputs get a tile of twice the rows (config.py),
    and 24 row pointers would not fit the general registers next to the k loop's own."""
    inside = (geo.pt == 0 and geo.pl == 0
              and (geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh < geo.h
              and (geo.ow - 1) * geo.sw + (geo.kw - 1) * geo.dw < geo.w)
    k = geo.kh * geo.kw * geo.c
    return (is_float and inside and geo.groups == 1 and geo.dw == 1 and geo.kh * geo.kw > 1
            and k <= MAX_KC_BLOCKS * shape.kc and geo.cout >= shape.lanes)


def window_shape(geo: Geometry, shape: GemmShape) -> GemmShape:
    """KC = K (one block); NC shrunk so the KC x NC packed-B buffer stays the normal size."""
    k = geo.kh * geo.kw * geo.c
    if k <= shape.kc:
        return shape
    nc = max(shape.nr, (shape.kc * shape.nc // k) // shape.nr * shape.nr)
    return replace(shape, kc=k, nc=nc)


class WindowA:
    """A operand read in place by the window micro-kernels: per tile, the GEMM driver hands them an
    array of its MR rows' window starts in x (a), the step between kernel rows (rsa = dh*W*C) and
    the length of one kernel row's run (csa = kw*cin); they are shape-generic like the packed ones."""

    packed_only = False
    pack_pays = False      # never packed: the GEMM's pack-A flag is always 0 for it

    def __init__(self, geo: Geometry, mr: int):
        self.geo, self.mr = geo, mr

    def direct(self, b, ptr, bi, row, k0):
        """(window starts of rows row .. row+MR-1, kernel-row step, run); one group, one K block
        (kc = K, so k0 = 0). Rows past M get a start too, never read: the kernel clamps to mvalid.

        Row `row` is split into (image, output row, column) once; the next rows step one column,
        wrapping to the next output row and image with selects. Dividing every row (two constant
        divisions each) took ~700 instructions per tile, ~5 % of conv2d_1's 12x32 tile of K = 288."""
        g = self.geo
        starts = entry_alloca(b, ptr.type, self.mr)
        pixels = i64(g.oh * g.ow)
        n, pix = b.udiv(row, pixels), b.urem(row, pixels)
        oh, ow = b.udiv(pix, i64(g.ow)), b.urem(pix, i64(g.ow))
        image = b.mul(n, i64(g.h * g.w * g.c))
        line = b.mul(oh, i64(g.sh * g.w * g.c))
        col = b.mul(ow, i64(g.sw * g.c))
        for r in range(self.mr):
            if r:
                ow = b.add(ow, i64(1))
                next_line = b.icmp_unsigned("==", ow, i64(g.ow))
                ow = b.select(next_line, i64(0), ow)
                col = b.select(next_line, i64(0), b.add(col, i64(g.sw * g.c)))
                oh = b.add(oh, b.zext(next_line, I64))
                line = b.select(next_line, b.add(line, i64(g.sh * g.w * g.c)), line)
                next_image = b.icmp_unsigned("==", oh, i64(g.oh))
                oh = b.select(next_image, i64(0), oh)
                line = b.select(next_image, i64(0), line)
                image = b.select(next_image, b.add(image, i64(g.h * g.w * g.c)), image)
            b.store(b.gep(ptr, [b.add(image, b.add(line, col))]), b.gep(starts, [i64(r)]))
        return b.bitcast(starts, ptr.type), i64(g.dh * g.w * g.c), i64(g.kw * g.c)

    def packed_strides(self, kc, mr_tile):
        return i64(0), i64(1)

    def pack(self, b, ptr, g, dst, m0, mc, k0, kc, mr_tile):
        """Nothing to pack: the pack-A flag is 0 for this operand (pack_pays is False)."""

    def tile_function(self, module, elem, lanes, mr_max, nr, epi, variants):
        """Two heights: MR, and a third of it (rounded up to a power of two) for short last tiles.

        Five heights cost ~0.25 s of cold LLVM work each; a partial tile runs the smallest height
        that holds it with rows clamped to mvalid (at most one per call). MR alone cost conv2d_1
        8 % at batch 1 (its 121 rows leave 1 in a 12-row tile); with the short height 1.5 %."""
        short = 1 << max(0, (-(-mr_max // 3) - 1).bit_length())
        variants = (variants[0], (mr_max, short) if short < mr_max else (mr_max,))

        def make(module, elem, lanes, rows, nr, edge, epi):
            return microkernel(module, elem, lanes, rows, nr, edge, epi, emitter=_WindowEmitter, tag="win")
        return tile_function(module, elem, lanes, mr_max, nr, epi, variants, kernel=make, tag="win")


class _WindowEmitter(_Emitter):
    """The packed micro-kernel with A rows read in x: k runs over kernel rows of `run` contiguous values."""

    def __init__(self, *args):
        super().__init__(*args)
        self.step, self.run = self.a["rsa"], self.a["csa"]
        self.a["csa"] = i64(1)   # within one kernel row a window's values are contiguous

    def _k_loop(self):
        """for each kernel row t: k in [t*run, (t+1)*run) reads x at the row's start + t*step + (k - t*run).

        A run-time loop over kernel rows (kc / run of them), not unrolled: three copies of the FMA
        loop made the kernel 2.5x the packed one's LLVM time for no measured speed."""
        b, a = self.b, self.a
        table = b.bitcast(a["a"], a["a"].type.as_pointer())
        rows = [b.load(b.gep(table, [self._row(r)])) for r in range(self.mr)]
        pre = b.block
        head, body, done = (b.append_basic_block(n) for n in ("t.head", "t.body", "t.done"))
        b.branch(head)
        b.position_at_end(head)
        k0, shift = b.phi(I64, "k0"), b.phi(I64, "shift")
        k0.add_incoming(i64(0), pre)
        shift.add_incoming(i64(0), pre)
        acc = [[self._phi(v, pre) for v in row] for row in self._zeros()]
        b.cbranch(b.icmp_signed("<", k0, a["kc"]), body, done)
        b.position_at_end(body)
        end = b.add(k0, self.run)
        self._prefetch_c_group(k0)
        with b.if_then(b.icmp_signed("==", b.add(end, self.run), a["kc"])):
            self._prefetch_newest_row(rows, b.add(shift, self.step))
        new = self._loop(k0, end, 1, [gep(b, p, shift) for p in rows], [acc])[0]
        add_incoming([k0, shift, acc], [end, b.add(shift, b.sub(self.step, self.run)), new], b.block)
        b.branch(head)
        b.position_at_end(done)
        return acc

    def _prefetch_c_group(self, k0):
        """At the start of kernel row g < C_PREFETCH_GROUPS, ask for group g's rows of C (groups past
        the last kernel row go with it).

        All 24 lines of a 12x32 tile asked for at once, each a miss to memory at batch 256, left the
        first k steps' loads waiting behind them: spread over the kernel rows, conv2d_1 (13x13x32->64)
        at batch 256 ran 2 % faster (1 thread, thread CPU time, interleaved with the old kernel)."""
        b, groups = self.b, C_PREFETCH_GROUPS
        last_row = b.sub(self.a["kc"], self.run)
        for g in range(groups):
            rows = range(g * self.mr // groups, (g + 1) * self.mr // groups)
            if not rows:
                continue
            with b.if_then(b.icmp_signed("==", k0, imin(b, b.mul(self.run, i64(g)), last_row))):
                self._prefetch_c(rows)

    def _prefetch_newest_row(self, rows, shift):
        """While the last kernel row but one runs, ask for the tile's windows in the last one to L1.

        That input row is the newest, first read by this tile (the other kernel rows' input was read
        by the tiles of the output row above): its misses stalled the broadcasts (conv2d_1 at batch
        256: 1.5 % faster with this, 1 thread). One loop over the lines from the first window's start
        to the last one's end, when the windows are about consecutive: MR windows of a 3-wide kernel
        span (MR + 2) / 3 runs, a few more where the tile wraps to the next output row (conv2d_1:
        4.7 and 5.3 runs); MR / 2 runs at most. Tiles that cross into the next image, or span several
        rows of a narrow input (conv2d_2's 5x5: ~10 runs, ~125 lines, mostly cached: 0.9 % slower
        with them), skip it."""
        b = self.b
        size = elem_bytes(self.elem)
        span = b.add(b.sdiv(b.sub(b.ptrtoint(rows[-1], I64), b.ptrtoint(rows[0], I64)), i64(size)), self.run)
        with b.if_then(b.icmp_signed("<=", span, b.mul(self.run, i64(max(2, self.mr // 2))))):
            base = gep(b, rows[0], shift)
            with for_range(b, 0, span, CACHE_LINE // size, "pf") as off:
                prefetch(b, gep(b, base, off), locality=3)

    def _prefetch_c(self, rows):
        """Ask for these rows' C lines (for writing) during the k loop, so their misses overlap it.

        A tall convolution output (7.9 MB for 13x13x32->64 at batch 256) no longer stays in the
        caches between calls; without this its stores at the tile's end waited on those misses
        (measured 4-5 % of that layer, neutral to +0.5 % on outputs that stay cached). Only rows
        below mvalid (the clamped ones repeat the last) and columns inside the tile are touched."""
        for r in rows:
            for v in range(self.nv):
                if v == 0 or self.masks[v] is None:   # an edge tile's first vector always has a column
                    prefetch(self.b, self._cptr(r, v), locality=3, write=True)
