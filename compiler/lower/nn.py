"""Lowerings of matmul, convolutions and pooling onto the kernels of compiler/kernels.

Each node becomes one call of a kernel function emitted once per distinct static configuration
(shapes, attributes, dtype, epilogue); the batch size and the thread count pass at run time.
The bias add and/or relu that a fused node (ir/ops/fused.py) assigns to the kernel is applied on
the tile in registers; the fused lowering runs the rest of the epilogue in place after the kernel.
"""
from __future__ import annotations

from kcompile.ir.f32_panels import packed_name

from ..kernels.conv import conv_function
from ..kernels.conv_pool import conv_pool_function
from ..kernels.epilogue import BiasActivation
from ..kernels.geometry import geometry1d, geometry2d
from ..kernels.config import gemm_shape
from ..kernels.matmul import matmul_function
from ..kernels.pool import pool_function
from ..loops import I64, for_range, product
from . import lowering, run_time_extents


def _call(ctx, fn, buffers, extra=(), rows=None):
    """Call a kernel; rows: the leading dimension its batch loop covers (conv/pool: see _rows)."""
    _call_pointers(ctx, fn, [buf.ptr for buf in buffers] + list(extra), rows)


def _call_pointers(ctx, fn, pointers, rows=None):
    b = ctx.builder
    elem = fn.args[0].type
    nthreads = ctx.nthreads if ctx.nthreads.type == I64 else b.zext(ctx.nthreads, I64)
    b.call(fn, [b.bitcast(p, elem) for p in pointers] + [ctx.batch if rows is None else rows, nthreads])


def _rows(ctx, dim):
    """The run-time batch N, or the static leading dimension: a graph with no N input runs with batch 0,
    so a kernel looping over the batch argument would compute nothing (found by injecting NaNs)."""
    return ctx.batch if dim == "N" else I64(int(dim))


def _claim_epilogue(ctx):
    """(BiasActivation, [bias pointer]) for the bias add and/or relu the fused node gives the kernel."""
    epi = ctx.epilogue
    if epi is None or not epi.in_kernel:
        return None, []
    ctx.take_epilogue()
    return BiasActivation(epi.bias is not None, epi.activation), ([epi.bias.ptr] if epi.bias is not None else [])


def _shape(v):
    return tuple(v.type.shape)


@lowering("matmul")
def lower_matmul(ctx):
    a, w = ctx.node.inputs
    a_shape, rows = _shape(a), None
    if any(isinstance(d, str) for d in a_shape[1:]):
        if _per_item_sequence_contraction(ctx, a_shape, _shape(w)):
            return
        a_shape, rows = _sequence_rows(ctx, a_shape, _shape(w))
    epi, extra = _claim_epilogue(ctx)
    packed = _packed_weight(ctx, w, rows)
    fn = matmul_function(ctx.module, ctx.target.features, a.type.dtype.name, a_shape, _shape(w),
                         ctx.attrs["transpose_a"], ctx.attrs["transpose_b"], epi, prepacked=bool(packed))
    _call(ctx, fn, [*ctx.ins, ctx.outs[0]], extra + [p.ptr for p in packed], rows)


def _packed_weight(ctx, w, rows) -> list:
    """[the weight's panel-packed companion Buffer] when prepack-f32 made one for this kernel's NR
    (passes/f32_prepack.py), else [] (the GEMM reads B in place or packs it per call)."""
    source = ctx.ins[1].value.param_name
    if source is None or not ctx.params or rows is not None or ctx.attrs["transpose_a"] or w.type.rank != 2:
        return []
    transposed = bool(ctx.attrs["transpose_b"])
    n = w.type.shape[0 if transposed else 1]
    packed = ctx.params.get(packed_name(source, gemm_shape(ctx.target.features, 4, n).nr, transposed))
    return [packed] if packed is not None and w.type.dtype.name == "f32" else []


run_time_extents("matmul")   # the tall form only (_sequence_rows); other forms refuse by name


def _per_item_sequence_contraction(ctx, a_shape, w_shape) -> bool:
    """[N, T, K]^T @ [N, T, G] -> [N, K, G] (the kernel gradient of the projection above, before its sum
    over N): one GEMM per batch item contracting over the run-time T (the kernel's run-time K)."""
    at = ctx.attrs
    if not (at["transpose_a"] and not at["transpose_b"] and len(a_shape) == 3 and len(w_shape) == 3
            and a_shape[:2] == w_shape[:2] and isinstance(a_shape[1], str) and ctx.epilogue is None
            and not any(isinstance(d, str) for d in (a_shape[2], w_shape[2]))):
        return False
    b = ctx.builder
    (x, dy), out = ctx.ins, ctx.outs[0]
    t, k, g = x.dims[1], a_shape[2], w_shape[2]
    fn = matmul_function(ctx.module, ctx.target.features, x.dtype.name, (a_shape[1], k), (a_shape[1], g), True, False)
    with for_range(b, ctx.batch, name="matmul.item") as n:
        item = [b.gep(x.ptr, [b.mul(n, b.mul(t, I64(k)))]), b.gep(dy.ptr, [b.mul(n, b.mul(t, I64(g)))]),
                b.gep(out.ptr, [b.mul(n, I64(k * g))])]
        _call_pointers(ctx, fn, item, rows=t)
    return True


def _sequence_rows(ctx, a_shape, w_shape):
    """[N, T, ..., K] @ [K, G] with a run-time length T (an RNN's input projection over all timesteps):
    every row meets the same W, so it is the tall GEMM of ("N", K) over N*T*... rows counted at run time."""
    if len(w_shape) != 2 or ctx.attrs["transpose_a"] or isinstance(a_shape[-1], str):
        from ..dynamic_dims import DynamicDimError   # (dynamic_dims imports the lowering table)
        raise DynamicDimError(f"{ctx.node.where()}: matmul {list(a_shape)} x {list(w_shape)} has a symbolic "
                              "dimension its native code needs static (only [N, T, ..., K] @ [K, G] takes one)")
    return ("N", a_shape[-1]), product(ctx.builder, ctx.ins[0].dims[:-1])


def _conv_geometry(ctx, x_shape, w_shape, cout):
    a = ctx.attrs
    if len(x_shape) == 3:
        return geometry1d(x_shape, w_shape[0], a["strides"], a["dilations"], a["padding"], a["groups"], cout)
    return geometry2d(x_shape, w_shape[:2], a["strides"], a["dilations"], a["padding"], a["groups"], cout)


@lowering("conv1d", "conv2d")
def lower_conv(ctx):
    x, w = ctx.node.inputs
    geo = _conv_geometry(ctx, _shape(x), _shape(w), w.type.shape[-1])
    pool = ctx.epilogue.pool if ctx.epilogue is not None else 0   # a fused max pool (passes/fuse_conv_pool.py)
    epi, extra = _claim_epilogue(ctx)
    if pool:
        fn = conv_pool_function(ctx.module, ctx.target.features, x.type.dtype.name, geo, epi, pool)
    else:
        fn = conv_function(ctx.module, ctx.target.features, x.type.dtype.name, "forward", geo, epi)
    _call(ctx, fn, [*ctx.ins, ctx.outs[0]], extra, _rows(ctx, x.type.shape[0]))


@lowering("conv2d_input_grad")
def lower_conv2d_input_grad(ctx):
    dy, w = ctx.node.inputs
    geo = _conv_geometry(ctx, tuple(ctx.attrs["input_shape"]), _shape(w), w.type.shape[-1])
    fn = conv_function(ctx.module, ctx.target.features, dy.type.dtype.name, "input_grad", geo)
    _call(ctx, fn, [*ctx.ins, ctx.outs[0]], rows=_rows(ctx, dy.type.shape[0]))


@lowering("conv2d_filter_grad")
def lower_conv2d_filter_grad(ctx):
    x, dy = ctx.node.inputs
    fs = tuple(ctx.attrs["filter_shape"])
    geo = _conv_geometry(ctx, _shape(x), fs, fs[-1])
    fn = conv_function(ctx.module, ctx.target.features, x.type.dtype.name, "filter_grad", geo)
    _call(ctx, fn, [*ctx.ins, ctx.outs[0]], rows=_rows(ctx, x.type.shape[0]))


def _pool_geometry(ctx, x_shape):
    a = ctx.attrs
    if len(x_shape) == 3:
        return geometry1d(x_shape, a["pool_size"][0], a["strides"][0], 1, a["padding"])
    return geometry2d(x_shape, a["pool_size"], a["strides"], (1, 1), a["padding"])


def _pool(kind):
    def lower(ctx):
        x = ctx.node.inputs[0]
        shape = tuple(ctx.attrs["input_shape"]) if kind == "avg_grad" else _shape(x)
        fn = pool_function(ctx.module, ctx.target.features, x.type.dtype.name, kind, _pool_geometry(ctx, shape))
        _call(ctx, fn, [*ctx.ins, ctx.outs[0]], rows=_rows(ctx, x.type.shape[0]))
    lower.__name__ = f"lower_{kind}_pool"
    return lower


lowering("max_pool1d", "max_pool2d")(_pool("max"))
lowering("avg_pool1d", "avg_pool2d")(_pool("avg"))
lowering("max_pool2d_grad")(_pool("max_grad"))
lowering("avg_pool2d_grad")(_pool("avg_grad"))
