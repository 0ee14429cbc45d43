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

from llvmlite import ir

from .config import GemmShape
from .geometry import Geometry
from ..loops import I64, declare_intrinsic, gep, i64
from .microkernel import _Emitter, microkernel, tile_function

# Largest K (in multiples of the normal KC) read as one block: B's K x NR panels stream from L2.
MAX_KC_BLOCKS = 4


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
    """A operand read in place by window micro-kernels: `a` is x, rows are found from row0."""

    packed_only = False
    pack_pays = False      # never packed: the GEMM's pack-A flag is always 0 for it

    def __init__(self, geo: Geometry):
        self.geo = geo

    def direct(self, b, ptr, bi, row, k0):
        # one group and one K block (kc = K): the tile locates its rows in x from row0 itself
        return ptr, i64(0), i64(1)

    def packed_strides(self, kc, mr_tile):
        return i64(0), i64(1)

    def pack(self, b, ptr, g, dst, m0, mc, k0, kc, mr_tile):
        """Nothing to pack: the pack-A flag is 0 for this operand (pack_pays is False)."""

    def tile_function(self, module, elem, lanes, mr_max, nr, epi, variants):
        """Two heights: MR, and a third of it (rounded up to a power of two) for short last tiles.

        Every variant is a kernel only this geometry's GEMMs use, and five heights cost ~0.4 s of
        cold LLVM work per convolution; a partial tile runs the smallest height that holds it with
        rows clamped to mvalid (at most one per call). MR alone cost conv2d_1 8 % at batch 1 (its
        121 rows leave 1 in a 12-row tile); with the short height 1.5 %, 0.2 % at batch 32."""
        geo = self.geo
        short = 1 << max(0, (-(-mr_max // 3) - 1).bit_length())
        variants = (variants[0], (mr_max, short) if short < mr_max else (mr_max,))
        tag = "win_" + "_".join(map(str, (geo.h, geo.w, geo.c, geo.kh, geo.kw, geo.oh, geo.ow,
                                          geo.sh, geo.sw, geo.dh)))

        def make(module, elem, lanes, rows, nr, edge, epi):
            return microkernel(module, elem, lanes, rows, nr, edge, epi,
                               emitter=lambda *args: _WindowEmitter(geo, *args), tag=tag)
        return tile_function(module, elem, lanes, mr_max, nr, epi, variants, kernel=make, tag=tag)


class _WindowEmitter(_Emitter):
    """The packed micro-kernel with A rows located in x: k runs over kh blocks of kw*cin contiguous values."""

    def __init__(self, geo: Geometry, *args):
        super().__init__(*args)
        self.geo = geo
        self.a["csa"] = i64(1)   # a row's values within one kernel row are contiguous

    def _k_loop(self):
        """for t in kernel rows: k in [t*run, (t+1)*run) reads x at row start + t*dh*W*C + (k - t*run).

        The kernel-row loop is a run-time loop, not unrolled: three copies of the FMA loop made the
        kernel 2.5x the packed one's LLVM time (0.35 s against 0.14 s) for no measured speed."""
        b, g = self.b, self.geo
        self._prefetch_c()
        rows = [self._row_start(r) for r in range(self.mr)]
        run, step = g.kw * g.c, g.dh * g.w * g.c
        pre = b.block
        head, body, done = (b.append_basic_block(n) for n in ("t.head", "t.body", "t.done"))
        b.branch(head)
        b.position_at_end(head)
        t = b.phi(I64, "t")
        t.add_incoming(i64(0), pre)
        acc = [[self._phi(v, pre) for v in row] for row in self._zeros()]
        b.cbranch(b.icmp_signed("<", t, i64(g.kh)), body, done)
        b.position_at_end(body)
        k0 = b.mul(t, i64(run))
        shift = b.mul(t, i64(step - run))
        new = self._loop(k0, b.add(k0, i64(run)), 1, [gep(b, p, shift) for p in rows], [acc])[0]
        t.add_incoming(b.add(t, i64(1)), b.block)
        for row, nrow in zip(acc, new):
            for phi, val in zip(row, nrow):
                phi.add_incoming(val, b.block)
        b.branch(head)
        b.position_at_end(done)
        return acc

    def _prefetch_c(self):
        """Ask for the tile's C lines (for writing) before the k loop, so their misses overlap it.

        A tall convolution output (7.9 MB for 13x13x32->64 at batch 256) no longer stays in the
        caches between calls; without this its stores at the tile's end waited on those misses
        (measured 4-5 % of that layer, neutral to +0.5 % on outputs that stay cached). Only rows
        below mvalid (the clamped ones repeat the last) and columns inside the tile are touched."""
        b = self.b
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        prefetch = declare_intrinsic(b.module, "llvm.prefetch.p0", ir.VoidType(), [i8p, i32, i32, i32])
        write, keep, data = (ir.Constant(i32, v) for v in (1, 3, 1))
        for r in range(self.mr):
            for v in range(self.nv):
                if v == 0 or self.masks[v] is None:   # an edge tile's first vector always has a column
                    b.call(prefetch, [b.bitcast(self._cptr(r, v), i8p), write, keep, data])

    def _row_start(self, r):
        """x + offset of row row0 + r's window (rows past mvalid repeat the last valid one)."""
        b, g = self.b, self.geo
        i = b.add(self.a["row0"], self._row(r))
        n, pix = b.udiv(i, i64(g.oh * g.ow)), b.urem(i, i64(g.oh * g.ow))
        oh, ow = b.udiv(pix, i64(g.ow)), b.urem(pix, i64(g.ow))
        off = b.add(b.mul(n, i64(g.h * g.w * g.c)),
                    b.mul(b.add(b.mul(oh, i64(g.sh * g.w)), b.mul(ow, i64(g.sw))), i64(g.c)))
        return gep(b, self.a["a"], off)
