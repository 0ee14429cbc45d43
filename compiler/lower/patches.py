"""Lowering of patches (ir/ops/patches.py): the im2col copy feeding a pruned convolution's sparse matmul.

Items are output rows (n, oh), split into pool tasks; each output position copies its KH x KW runs of
C contiguous input channels (a run in the padding is written as zeros), so the inner loop is a plain
copy LLVM vectorizes. 8-bit inputs copy as bytes, padding with pad_value (the zero point).
"""
from __future__ import annotations

from kcompile.ir.ops.nn import conv_geometry

from llvmlite import ir

from ..loops import for_range, i64
from . import lowering
from .parallel import parallel_for

# elements per task: a copy costs about 0.1 ns an element, so parallel_for's default 32K made a
# batch-1 convolution's 35K-element copy (3 us) wake a second thread; 512K is about 40 us of copying
COPY_TASK_ELEMENTS = 1 << 19


def _geometry(node):
    """((H, W), C, (KH, KW), (SH, SW), (DH, DW), (pad top, pad left), (OH, OW)); a 1-D input has H = 1."""
    x, a = node.inputs[0].type, node.attrs
    lead = (1,) if len(a["kernel"]) == 1 else ()
    sizes, kernel = lead + tuple(x.shape[1:-1]), lead + tuple(a["kernel"])
    strides, dilations = lead + tuple(a["strides"]), lead + tuple(a["dilations"])
    geo = [conv_geometry(s, k, st, d, a["padding"]) for s, k, st, d in zip(sizes, kernel, strides, dilations)]
    return sizes, x.shape[-1], kernel, strides, dilations, tuple(g[1] for g in geo), tuple(g[0] for g in geo)


@lowering("patches")
def lower_patches(ctx):
    (h, w), c, (kh_n, kw_n), (sh, sw), (dh, dw), (pt, pl), (oh_n, ow_n) = _geometry(ctx.node)
    b = ctx.builder
    elem = ctx.outs[0].ptr.type.pointee
    pad = ir.Constant(elem, ctx.attrs["pad_value"] if isinstance(elem, ir.IntType) else 0.0)
    rows = b.mul(ctx.ins[0].dims[0], i64(oh_n))

    def body(bb, lo, hi, vals):
        src, dst = vals
        with for_range(bb, hi, start=lo, name="prow") as r:
            n, oh = bb.sdiv(r, i64(oh_n)), bb.srem(r, i64(oh_n))
            with for_range(bb, ow_n, name="pcol") as ow:
                base = bb.mul(bb.add(bb.mul(r, i64(ow_n)), ow), i64(kh_n * kw_n * c))
                with for_range(bb, kh_n, name="pkh") as kh:
                    ih = bb.sub(bb.add(bb.mul(oh, i64(sh)), bb.mul(kh, i64(dh))), i64(pt))
                    row_in = bb.and_(bb.icmp_signed(">=", ih, i64(0)), bb.icmp_signed("<", ih, i64(h)))
                    with for_range(bb, kw_n, name="pkw") as kw:
                        iw = bb.sub(bb.add(bb.mul(ow, i64(sw)), bb.mul(kw, i64(dw))), i64(pl))
                        inside = bb.and_(row_in, bb.and_(bb.icmp_signed(">=", iw, i64(0)),
                                                         bb.icmp_signed("<", iw, i64(w))))
                        out = bb.gep(dst, [bb.add(base, bb.mul(bb.add(bb.mul(kh, i64(kw_n)), kw), i64(c)))])
                        with bb.if_else(inside) as (then, otherwise):
                            with then:
                                at = bb.mul(bb.add(bb.mul(bb.add(bb.mul(n, i64(h)), ih), i64(w)), iw), i64(c))
                                run = bb.gep(src, [at])
                                with for_range(bb, c, name="pcopy") as ch:
                                    bb.store(bb.load(bb.gep(run, [ch])), bb.gep(out, [ch]))
                            with otherwise:
                                with for_range(bb, c, name="pzero") as ch:
                                    bb.store(pad, bb.gep(out, [ch]))

    parallel_for(b, "patches", ctx.nthreads, rows, i64(ow_n * kh_n * kw_n * c), [ctx.ins[0].ptr, ctx.outs[0].ptr],
                 body, task_elements=COPY_TASK_ELEMENTS)

