"""Convolutions as implicit GEMMs over the shared packed micro-kernel (one GEMM batch item per group).

forward       C[(n,oh,ow), co] = A[(n,oh,ow), (kh,kw,ci)] @ w[(kh,kw,ci), co]       (M grows with batch)
input grad    dx[(n,ih,iw), ci] = dy-windows[(n,ih,iw), (kh,kw,co)] @ w^T[(kh,kw,co), ci]
filter grad   dw[(kh,kw,ci), co] = x-windows^T[(kh,kw,ci), (n,oh,ow)] @ dy[(n,oh,ow), co] (K grows with batch)
A 1x1 stride-1 unpadded convolution is a plain strided matmul over the input; a depthwise forward
convolution and one with a tiny contraction (first layers) run direct kernels (depthwise.py, direct.py,
and direct_grad.py for the filter gradient).
"""
from __future__ import annotations

import hashlib
from dataclasses import replace

from llvmlite import ir

from .config import GemmShape, gemm_shape, gemm_wide_shape, vector_bits, vector_registers
from .depthwise import depthwise_function, is_depthwise
from .direct import direct_function, use_direct
from .direct_grad import direct_filter_grad_function, use_direct_filter_grad
from .epilogue import BiasActivation, Epilogue
from .gemm import GemmProblem, gemm_function
from .geometry import Geometry
from .im2col import Im2colA, InputGradB, split3
from .window_tile import WindowA, use_window, window_shape
from ..loops import i64, llvm_type
from .matmul import ITEMSIZE
from .operands import BatchShape, Strided, StridedA, StridedB, StridedC


def conv_function(module: ir.Module, features: str, dtype: str, kind: str, geo: Geometry,
                  epi: Epilogue | None = None) -> ir.Function:
    """Get or emit `void f(T* in0, T* in1, T* out, T* epilogue_ptrs..., i64 batch, i64 nthreads)`.

    kind: "forward" (x, w -> y), "input_grad" (dy, w -> dx), "filter_grad" (x, dy -> dw).
    """
    epi = epi or BiasActivation()
    if kind == "forward" and is_depthwise(geo):
        return depthwise_function(module, features, dtype, geo, epi)
    lanes = vector_bits(features) // (8 * ITEMSIZE[dtype])
    if kind == "forward" and use_direct(geo, lanes):
        return direct_function(module, features, dtype, geo, epi)
    if kind == "filter_grad" and is_float_dtype(dtype) and use_direct_filter_grad(geo, lanes):
        return direct_filter_grad_function(module, features, dtype, geo)
    shape = gemm_shape(features, ITEMSIZE[dtype], geo.cin_g if kind == "input_grad" else geo.cout_g)
    if kind == "filter_grad":
        shape = _channel_aligned(shape, geo.cin_g)
    window = kind == "forward" and use_window(geo, shape, is_float_dtype(dtype))
    if window:
        shape = window_shape(geo, shape, vector_registers(features))
    key = repr((kind, dtype, geo, epi.ident, shape, window))
    name = f"kc_conv_{kind}_{epi.ident}_" + hashlib.sha1(key.encode()).hexdigest()[:12]
    builder = _forward_window if window else {"forward": _forward, "input_grad": _input_grad,
                                              "filter_grad": _filter_grad}[kind]
    prob = builder(name, llvm_type(dtype), geo, epi, shape)
    wide = gemm_wide_shape(features, ITEMSIZE[dtype])
    return gemm_function(module, prob, shape, wide)


def is_float_dtype(dtype: str) -> bool:
    return dtype in ("f32", "f64")


def _channel_aligned(shape: GemmShape, cin_g: int) -> GemmShape:
    """Filter-gradient rows are (kh, kw, ci): with MR dividing cin_g every A panel column is one
    contiguous run of channels, packed with a single vector load."""
    for mr in range(shape.mr, max(shape.mr // 2, 1) - 1, -1):
        if cin_g % mr == 0:
            return replace(shape, mr=mr, mc=max(shape.mc // mr, 1) * mr)
    return shape


def _is_pointwise(g: Geometry) -> bool:
    return g.kh == g.kw == 1 and g.sh == g.sw == 1 and g.pt == g.pl == 0


def _forward(name, elem, g: Geometry, epi, shape: GemmShape):
    lanes, kc = shape.lanes, shape.kc
    groups = BatchShape((g.groups,))
    kdim = g.kh * g.kw * g.cin_g
    if _is_pointwise(g):
        a = StridedA(Strided(g.c, 1, (g.cin_g,)), groups)
    else:
        def rows(b, i, grp):
            n, oh, ow = split3(b, i, g.oh, g.ow)
            off = b.add(b.mul(n, i64(g.h * g.w * g.c)), b.mul(grp, i64(g.cin_g)))
            return b.sub(b.mul(oh, i64(g.sh)), i64(g.pt)), b.sub(b.mul(ow, i64(g.sw)), i64(g.pl)), off

        def cols(b, k, grp):
            kh, kw, ci = split3(b, k, g.kw, g.cin_g)
            return b.mul(kh, i64(g.dh)), b.mul(kw, i64(g.dw)), ci
        a = Im2colA((g.h, g.w), g.c, rows, cols, layout="rows", run=g.cin_g, lanes=lanes, taps=(g.kh, g.kw, kc))
    return GemmProblem(name, elem, groups, g.oh * g.ow, g.cout_g, kdim, a,
                       StridedB(Strided(g.cout, 1, (g.cout_g,)), groups, lanes),
                       StridedC(Strided(g.cout, 1, (g.cout_g,)), groups, group_cols=g.cout_g), epi,
                       m_per_batch=True)


def _forward_window(name, elem, g: Geometry, epi, shape: GemmShape):
    """Unpadded, one group: the micro-kernels read the windows in place (window_tile.py)."""
    one = BatchShape((1,))
    return GemmProblem(name, elem, one, g.oh * g.ow, g.cout, g.kh * g.kw * g.c, WindowA(g, shape.mr),
                       StridedB(Strided(g.cout, 1, (0,)), one, shape.lanes),
                       StridedC(Strided(g.cout, 1, (0,)), one), epi, m_per_batch=True)


def _input_grad(name, elem, g: Geometry, epi, shape: GemmShape):
    lanes, kc = shape.lanes, shape.kc
    groups = BatchShape((g.groups,))

    def rows(b, i, grp):
        n, ih, iw = split3(b, i, g.h, g.w)
        off = b.add(b.mul(n, i64(g.oh * g.ow * g.cout)), b.mul(grp, i64(g.cout_g)))
        return b.add(ih, i64(g.pt)), b.add(iw, i64(g.pl)), off

    def cols(b, k, grp):
        kh, kw, co = split3(b, k, g.kw, g.cout_g)
        return b.neg(b.mul(kh, i64(g.dh))), b.neg(b.mul(kw, i64(g.dw))), co
    a = Im2colA((g.oh, g.ow), g.cout, rows, cols, divisor=(g.sh, g.sw), layout="rows", run=g.cout_g,
                lanes=lanes, taps=(g.kh, g.kw, kc))
    return GemmProblem(name, elem, groups, g.h * g.w, g.cin_g, g.kh * g.kw * g.cout_g, a,
                       InputGradB(g.cin_g, g.cout, g.cout_g),
                       StridedC(Strided(g.c, 1, (g.cin_g,)), groups, group_cols=g.cin_g), epi,
                       m_per_batch=True)


def _filter_grad(name, elem, g: Geometry, epi, shape: GemmShape):
    lanes, max_panels = shape.lanes, -(-shape.mc // shape.mr)
    groups = BatchShape((g.groups,))

    def rows(b, i, grp):
        kh, kw, ci = split3(b, i, g.kw, g.cin_g)
        off = b.add(b.mul(grp, i64(g.cin_g)), ci)
        return b.sub(b.mul(kh, i64(g.dh)), i64(g.pt)), b.sub(b.mul(kw, i64(g.dw)), i64(g.pl)), off

    def cols(b, k, grp):
        n, oh, ow = split3(b, k, g.oh, g.ow)
        return b.mul(oh, i64(g.sh)), b.mul(ow, i64(g.sw)), b.mul(n, i64(g.h * g.w * g.c))
    a = Im2colA((g.h, g.w), g.c, rows, cols, run=g.cin_g, lanes=lanes, max_panels=max_panels)
    return GemmProblem(name, elem, groups, g.kh * g.kw * g.cin_g, g.cout_g, g.oh * g.ow, a,
                       StridedB(Strided(g.cout, 1, (g.cout_g,)), groups, lanes),
                       StridedC(Strided(g.cout, 1, (g.cout_g,)), groups, group_cols=g.cout_g), epi,
                       k_per_batch=True)
