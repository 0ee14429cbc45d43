"""Lowerings of the quantization ops: integer matmul/conv onto the int8 GEMM (compiler/kernels/int8_*),
with a fused [bias add +] requantize epilogue applied in the kernel when the fuse pass outlined one,
quantize/dequantize/requantize as vectorized loops with the reference's exact f32 steps
(compiler/kernels/quantmath.py).

The elementwise loops see the data as rows: per tensor, rows of the leading axis with one scale;
per axis along the last axis, rows whose elements each take their own scale (vector loads of the
parameters); per axis elsewhere, rows (outer x channel) of the trailing elements with one scale.
Rows are split into pool tasks.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from kcompile.passes.int8_prepack import packed_name
from kcompile.passes.int8_window import window_layout
from kcompile.passes.rewrite import constant_value

from ..kernels.geometry import geometry2d
from ..kernels.int8_calls import int8_conv_function, int8_matmul_function, tile_for
from ..kernels.int8_microkernel import Requantize, StoreI32
from ..kernels.quantmath import F32, bounds, round_saturate, zero_point_f32
from ..loops import I64, entry_alloca, for_range, i64, load, product, splat, store, vec_type, vector_range
from . import lowering
from .parallel import parallel_for

# elements per pool task of quantize/dequantize/requantize: a few vector instructions an element,
# so a batch-64 MNIST input (50k elements, ~15 us) stays on the calling thread; waking a worker
# costs microseconds on an idle machine and milliseconds on a busy one
QUANT_TASK_ELEMENTS = 1 << 17


def _call(ctx, fn, buffers):
    """Call a kernel `f(T* ..., i64 batch, i64 nthreads)`, casting each buffer to its parameter type."""
    b = ctx.builder
    ptrs = [b.bitcast(buf.ptr, arg.type) for buf, arg in zip(buffers, fn.args)]
    nthreads = ctx.nthreads if ctx.nthreads.type == I64 else b.zext(ctx.nthreads, I64)
    b.call(fn, ptrs + [ctx.batch, nthreads])


def _epilogue(ctx):
    """(output kind, extra buffers) for the kernel: a fused requantize epilogue (bias add, requantize,
    as the fuse pass decided) is claimed and written as 8 bits; otherwise i32 results, and codegen
    runs any other epilogue in place after the kernel."""
    epi = ctx.epilogue
    if epi is None or epi.activation != "requantize":
        return StoreI32(), []
    if epi.pool and ctx.node.op != "conv2d_integer":
        raise NotImplementedError(f"{ctx.node.where()}: a fused max pool follows only an integer convolution")
    ctx.take_epilogue()
    rq = epi.members[epi.in_kernel - 1 - bool(epi.pool)]
    mult, zp = (epi.leaves[v] for v in rq.inputs[1:])
    out = Requantize(rq.inputs[2].type.dtype.name, epi.bias is not None, rq.inputs[1].type.rank == 1, rq.attrs["relu"],
                     epi.pool)
    return out, ([epi.bias] if epi.bias is not None else []) + [mult, zp]


def _packed_weight(ctx, n: int, groups: int, window=None) -> list:
    """[the packed copy's Buffer] when the weight is a parameter prepack-int8 packed for this kernel's
    tile (passes/int8_prepack.py; window: a convolution's window-row layout), else [] (the kernel
    packs B per call)."""
    source = ctx.ins[1].value.param_name
    if source is None or not ctx.params:
        return []
    tile = tile_for(ctx.target.features, n)
    packed = ctx.params.get(packed_name(source, tile.group, tile.nr, groups, window, tile.b_bytes))
    return [packed] if packed is not None else []


def _known_zero(zero_point) -> bool:
    """Whether a weight zero point (the graph's Value, also when the node is inside a fused kernel) is a
    constant of zeros (symmetric weights, as quantize-int8 makes them)."""
    value = constant_value(zero_point)
    return value is not None and not np.any(value)


@lowering("matmul_integer")
def lower_matmul_integer(ctx):
    a, w, _, bzp = ctx.node.inputs
    out, extra = _epilogue(ctx)
    packed = _packed_weight(ctx, w.type.shape[1], 1)
    fn = int8_matmul_function(ctx.module, ctx.target.features, a.type.dtype.name, tuple(a.type.shape),
                              tuple(w.type.shape), bzp.type.rank == 1, out, prepacked=bool(packed),
                              bz_zero=_known_zero(ctx.ins[3].value))
    _call(ctx, fn, [*ctx.ins, ctx.outs[0], *extra, *packed])


@lowering("conv2d_integer")
def lower_conv2d_integer(ctx):
    x, w, _, wzp = ctx.node.inputs
    at = ctx.attrs
    geo = geometry2d(x.type.shape, w.type.shape[:2], at["strides"], at["dilations"], at["padding"], at["groups"],
                     w.type.shape[3])
    out, extra = _epilogue(ctx)
    window = window_layout(x.type.shape, w.type.shape, at, tile_for(ctx.target.features, geo.cout_g).group)
    packed = _packed_weight(ctx, geo.cout_g, geo.groups, window) if window else []
    window = window if packed else None
    packed = packed or _packed_weight(ctx, geo.cout_g, geo.groups)
    fn = int8_conv_function(ctx.module, ctx.target.features, x.type.dtype.name, geo, x.type.shape[0],
                            wzp.type.rank == 1, out, prepacked=bool(packed), window=window is not None,
                            bz_zero=_known_zero(ctx.ins[3].value))
    _call(ctx, fn, [*ctx.ins, ctx.outs[0], *extra, *packed])


# -- elementwise ------------------------------------------------------------------------------
def _rows(ctx, data, per_axis: bool):
    """(rows, row length, channels C, mode): mode 'scalar' (one parameter per row: row % C) or
    'vector' (the parameters run along the row)."""
    dims = data.dims or [i64(1)]
    b = ctx.builder
    if not per_axis:
        return dims[0], product(b, dims[1:]) if len(dims) > 1 else i64(1), i64(1), "scalar"
    ax = ctx.attrs["axis"] % len(dims)
    if ax == len(dims) - 1:
        return product(b, dims[:-1]) if len(dims) > 1 else i64(1), dims[-1], dims[-1], "vector"
    return product(b, dims[:ax + 1]), product(b, dims[ax + 1:]), dims[ax], "scalar"


def _elementwise(ctx, name, per_axis: bool, params: list, element, extras=()):
    """Loop over the data (ins[0]) and write outs[0]: element(b, x, params at this index, extras, width);
    params are Buffers indexed by channel, extras pointers handed through to the workers as they are."""
    b = ctx.builder
    rows, length, chans, mode = _rows(ctx, ctx.ins[0], per_axis)
    ptrs = [ctx.ins[0].ptr, ctx.outs[0].ptr] + [p.ptr for p in params] + list(extras)
    nparams = len(params)

    def body(bb, lo, hi, vals):
        src, dst, *rest = vals[:len(ptrs)]
        pp, ex = rest[:nparams], rest[nparams:]
        n, c = vals[len(ptrs):]
        with for_range(bb, hi, start=lo, name=f"{name}.row") as r:
            base = bb.mul(r, n)
            chan = bb.srem(r, c)

            def one(i, width):
                flat = bb.add(base, i)
                if mode == "vector":
                    got = [load(bb, bb.gep(p, [i]), width) for p in pp]
                else:
                    got = [splat(bb, bb.load(bb.gep(p, [chan])), width) for p in pp]
                y = element(bb, load(bb, bb.gep(src, [flat]), width), got, ex, width)
                store(bb, y, bb.gep(dst, [flat]))

            vector_range(bb, n, ctx.target.lanes(4), one, name=f"{name}.el")

    parallel_for(b, name, ctx.nthreads, rows, length, ptrs + [length, chans], body, QUANT_TASK_ELEMENTS)


@lowering("quantize")
def lower_quantize(ctx):
    x, scale, zp = ctx.node.inputs
    dt = zp.type.dtype.name

    def element(b, v, params, extras, width):
        s, z = params
        lo, hi = bounds(b, ir.Constant(F32, 0.0), dt, False)
        return round_saturate(b, b.fdiv(v, s), zero_point_f32(b, z, dt), splat(b, lo, width), splat(b, hi, width))

    _elementwise(ctx, "quantize", scale.type.rank == 1, ctx.ins[1:], element)


@lowering("dequantize")
def lower_dequantize(ctx):
    q, scale, _ = ctx.node.inputs
    ext = "zext" if q.type.dtype.name == "u8" else "sext"

    def element(b, v, params, extras, width):
        s, z = params
        wide = vec_type(I64, width)
        diff = b.sub(getattr(b, ext)(v, wide), getattr(b, ext)(z, wide))   # exact in i64, one rounding to f32
        return b.fmul(b.sitofp(diff, vec_type(F32, width)), s)

    _elementwise(ctx, "dequantize", scale.type.rank == 1, ctx.ins[1:], element)


@lowering("requantize")
def lower_requantize(ctx):
    _, mult, zp = ctx.node.inputs
    dt = zp.type.dtype.name
    b = ctx.builder
    zf = zero_point_f32(b, b.load(ctx.ins[2].ptr), dt)
    lo, hi = bounds(b, zf, dt, ctx.attrs["relu"])
    slots = []   # the zero point and bounds, read once, travel to the workers through stack slots
    for v in (zf, lo, hi):
        slots.append(entry_alloca(b, F32))
        b.store(v, slots[-1])

    def element(b, v, params, extras, width):
        r = b.fmul(b.sitofp(v, vec_type(F32, width)), params[0])
        return round_saturate(b, r, *(splat(b, b.load(p), width) for p in extras))

    _elementwise(ctx, "requantize", mult.type.rank == 1, [ctx.ins[1]], element, slots)
