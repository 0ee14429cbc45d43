"""The rounding and saturation of quantize/requantize (ir/ops/quant.py), as exact vector code.

Every step is one IEEE f32 operation with no fast-math flags, so LLVM can neither contract the
multiply into an FMA nor reassociate: rint half to even (llvm.roundeven), + zero point, clamp to
[lo, hi] (NaN -> lo), convert. The GEMM epilogue and the elementwise lowerings share this code.
"""
from __future__ import annotations

from llvmlite import ir

from ..loops import I8, I32, declare_intrinsic, type_suffix

F32 = ir.FloatType()
RANGES = {"i8": (-128.0, 127.0), "u8": (0.0, 255.0)}


def _vty(v, elem):
    return ir.VectorType(elem, v.type.count) if isinstance(v.type, ir.VectorType) else elem


def round_saturate(b: ir.IRBuilder, r, zp, lo, hi):
    """i8 values of clamp(roundeven(r) + zp, lo, hi), NaN -> lo; r, zp, lo, hi are f32 (vectors)."""
    v = round_saturate_i32(b, r, zp, lo, hi)
    return b.trunc(v, _vty(v, I8))


def round_saturate_i32(b: ir.IRBuilder, r, zp, lo, hi):
    """round_saturate's values as i32, before the truncation to 8 bits (within [lo, hi])."""
    fn = declare_intrinsic(b.module, f"llvm.roundeven.{type_suffix(r.type)}", r.type, [r.type])
    v = b.fadd(b.call(fn, [r]), zp)
    v = b.select(b.fcmp_ordered(">", v, lo), v, lo)        # NaN takes lo too (one maxps; v == lo: the same value)
    v = b.select(b.fcmp_ordered(">", v, hi), hi, v)
    return b.fptosi(v, _vty(v, I32))


def zero_point_f32(b: ir.IRBuilder, zp_i8, dtype: str):
    """The 8-bit zero point(s) (an i8 LLVM scalar or vector) as f32."""
    return (b.sitofp if dtype == "i8" else b.uitofp)(zp_i8, _vty(zp_i8, F32))


def bounds(b: ir.IRBuilder, zp_f32, dtype: str, relu: bool):
    """(lo, hi) as f32 scalars: the type's range, lo raised to the zero point under relu."""
    lo, hi = (ir.Constant(F32, x) for x in RANGES[dtype])
    if relu:
        lo = b.select(b.fcmp_ordered(">", zp_f32, lo), zp_f32, lo)
    return lo, hi
