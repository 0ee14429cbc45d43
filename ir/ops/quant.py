"""Integer quantization ops (ONNX-aligned): quantize, dequantize, matmul_integer, conv2d_integer, requantize.

The float arithmetic is pinned down so native code can match the reference bit for bit:
- quantize:   r = rint_half_even(f32(x) / f32(scale))      (one IEEE f32 division)
- requantize: r = rint_half_even(f32(acc) * f32(multiplier)) (i32 -> f32 rounds to nearest even;
              one IEEE f32 multiply, never fused with anything)
then both do: r = r + f32(zero_point) (f32 add); clamp to the 8-bit range in f32 (relu: the lower
bound is max(type min, zero_point)), NaN going to the lower bound as in onnxruntime; convert the
now-integral value to the 8-bit type. dequantize is f32(i64(q) - i64(zp)) * f32(scale) (exact subtraction, one rounding to
f32, one f32 multiply). Integer matmul/conv subtract the zero points and accumulate exactly,
wrapping modulo 2^32 like i32 adds (no saturation anywhere).

Per-axis: a 1-d scale (and zero point) of length C applies along `axis` of the data, which must
have extent C; a 0-d scale is per tensor.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import dtype as to_dtype, f32, i8, i32, u8
from ..registry import Attr, defop
from ..types import TensorType
from ._util import norm_axis, require
from .nn import CONV_ATTRS, check_conv_attrs, conv2d_ref, conv_out_shape

EIGHT_BIT = (i8, u8)
QRANGE = {i8: (-128, 127), u8: (0, 255)}


# -- type checks shared by the ops -----------------------------------------------------------
def _dtype_in(op: str, what: str, t: TensorType, allowed):
    names = " or ".join(d.name for d in allowed)
    require(t.dtype in allowed, f"{op}: {what} must be {names}, got {t.dtype.name} ({t})")


def _scale_like(op: str, data: TensorType, scale: TensorType, zp: TensorType | None, axis: int, what: str):
    """scale is 0-d (per tensor) or [C] with C = data.shape[axis]; zp (if given) has scale's shape."""
    _dtype_in(op, what, scale, (f32,))
    require(scale.rank <= 1, f"{op}: {what} must be 0-d (per tensor) or 1-d (per axis), got {scale}")
    if scale.rank == 1:
        ax = norm_axis(axis, data.rank, f"{op}: axis")
        require(scale.shape[0] == data.shape[ax],
                f"{op}: per-axis {what} {scale} must have {data.shape[ax]} entries (axis {axis} of {data})")
    if zp is not None:
        require(zp.shape == scale.shape, f"{op}: zero_point {zp} must have the shape of {what} {scale}")


def _per_axis(v: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """Reshape a 0-d or [C] array to broadcast along `axis` of a rank-`rank` array."""
    if v.ndim == 0:
        return v
    shape = [1] * rank
    shape[axis % rank] = v.shape[0]
    return v.reshape(shape)


def round_saturate(r: np.ndarray, zero_point: np.ndarray, dtype, relu: bool = False) -> np.ndarray:
    """rint (half to even) of f32 `r`, + zero point in f32, clamp in f32 (NaN -> lower bound), convert."""
    v = np.rint(np.asarray(r, np.float32)) + np.asarray(zero_point).astype(np.float32)
    lo, hi = QRANGE[dtype]
    lo = np.maximum(np.float32(lo), np.asarray(zero_point).astype(np.float32)) if relu else np.float32(lo)
    v = np.where(np.isnan(v) | (v < lo), lo, v)
    return np.minimum(v, np.float32(hi)).astype(np.float32).astype(dtype.np)


# -- quantize / dequantize -------------------------------------------------------------------
def _quantize_infer(ts, attrs):
    x, scale, zp = ts
    _dtype_in("quantize", "x", x, (f32,))
    _dtype_in("quantize", "zero_point", zp, EIGHT_BIT)
    _scale_like("quantize", x, scale, zp, attrs["axis"], "scale")
    return [x.with_dtype(zp.dtype)]


def _quantize_ref(xs, attrs, batch):
    x, scale, zp = xs
    ax = attrs["axis"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = (x / _per_axis(scale, x.ndim, ax)).astype(np.float32)
    return [round_saturate(r, _per_axis(zp, x.ndim, ax), to_dtype(zp.dtype))]


def _dequantize_infer(ts, attrs):
    q, scale, zp = ts
    _dtype_in("dequantize", "q", q, EIGHT_BIT + (i32,))
    require(zp.dtype == q.dtype, f"dequantize: zero_point must have q's dtype {q.dtype.name}, got "
                                 f"{zp.dtype.name} ({zp})")
    _scale_like("dequantize", q, scale, zp, attrs["axis"], "scale")
    return [q.with_dtype(f32)]


def _dequantize_ref(xs, attrs, batch):
    q, scale, zp = xs
    ax = attrs["axis"]
    diff = (q.astype(np.int64) - _per_axis(zp, q.ndim, ax).astype(np.int64)).astype(np.float32)
    return [(diff * _per_axis(scale, q.ndim, ax)).astype(np.float32)]


QAXIS = {"axis": Attr("int", -1)}
defop("quantize", ("x", "scale", "zero_point"), _quantize_infer, _quantize_ref, attrs=QAXIS, differentiable=False,
      doc="saturate(round_half_even(x / scale) + zero_point) to the zero point's 8-bit type (ONNX QuantizeLinear)")
defop("dequantize", ("q", "scale", "zero_point"), _dequantize_infer, _dequantize_ref, attrs=QAXIS,
      differentiable=False, doc="(q - zero_point) * scale in f32 (ONNX DequantizeLinear)")


# -- integer matmul / conv -------------------------------------------------------------------
def _zero_points(op, a: TensorType, b: TensorType, azp: TensorType, bzp: TensorType, nout, names):
    an, bn = names
    _dtype_in(op, an, a, EIGHT_BIT)
    _dtype_in(op, bn, b, (i8,))
    require(azp.dtype == a.dtype and azp.rank == 0,
            f"{op}: {an}_zero_point must be a 0-d {a.dtype.name}, got {azp}")
    _dtype_in(op, f"{bn}_zero_point", bzp, (i8,))
    require(bzp.rank == 0 or bzp.shape == (nout,),
            f"{op}: {bn}_zero_point must be 0-d or [{nout}] (one per output column), got {bzp}")


def _matmul_integer_infer(ts, attrs):
    a, b, azp, bzp = ts
    require(a.rank >= 2 and b.rank == 2, f"matmul_integer needs a of rank >= 2 and b of rank 2 [K, M], got {a} and {b}")
    _zero_points("matmul_integer", a, b, azp, bzp, b.shape[1], ("a", "b"))
    require(a.shape[-1] == b.shape[0], f"matmul_integer contraction mismatch: {a} (k={a.shape[-1]}) and {b} "
                                       f"(k={b.shape[0]})")
    return [TensorType(a.shape[:-1] + (b.shape[1],), i32)]


def _wrap_i32(v: np.ndarray) -> np.ndarray:
    return v.astype(np.int64).astype(np.int32)  # modulo 2^32, as i32 accumulation wraps


def _matmul_integer_ref(xs, attrs, batch):
    a, b, azp, bzp = (x.astype(np.int64) for x in xs)
    return [_wrap_i32(np.matmul(a - azp, b - bzp))]


def _conv2d_integer_infer(ts, attrs):
    x, w, xzp, wzp = ts
    check_conv_attrs(attrs, 2)
    require(x.rank == 4, f"conv2d_integer input must be NHWC (rank 4), got {x}")
    require(w.rank == 4, f"conv2d_integer kernel must be (kh, kw, in/groups, out), got {w}")
    _zero_points("conv2d_integer", x, w, xzp, wzp, w.shape[3], ("x", "w"))
    g = attrs["groups"]
    require(x.shape[3] == w.shape[2] * g and w.shape[3] % g == 0,
            f"conv2d_integer channels: input {x} has {x.shape[3]} channels, kernel {w} with groups={g} expects "
            f"{w.shape[2] * g} (and out channels divisible by groups)")
    return [TensorType(conv_out_shape(x.shape, w.shape[:2], w.shape[3], attrs), i32)]


def _conv2d_integer_ref(xs, attrs, batch):
    """Padding contributes zero after the zero point is subtracted (ONNX pads with x_zero_point)."""
    x, w, xzp, wzp = (v.astype(np.int64) for v in xs)
    return [_wrap_i32(conv2d_ref(x - xzp, w - wzp, attrs))]


defop("matmul_integer", ("a", "b", "a_zero_point", "b_zero_point"), _matmul_integer_infer, _matmul_integer_ref,
      differentiable=False, traits=("anchor",),
      doc="(a - a_zp) @ (b - b_zp) with exact i32 accumulation (ONNX MatMulInteger); b is [K, M]")
defop("conv2d_integer", ("x", "w", "x_zero_point", "w_zero_point"), _conv2d_integer_infer, _conv2d_integer_ref,
      attrs=CONV_ATTRS, differentiable=False, traits=("anchor",),
      doc="NHWC conv2d of (x - x_zp) and (w - w_zp) with exact i32 accumulation (ONNX ConvInteger)")


# -- requantize ------------------------------------------------------------------------------
def _requantize_infer(ts, attrs):
    acc, mult, zp = ts
    _dtype_in("requantize", "acc", acc, (i32,))
    _dtype_in("requantize", "zero_point", zp, EIGHT_BIT)
    require(zp.rank == 0, f"requantize: zero_point must be 0-d, got {zp}")
    _scale_like("requantize", acc, mult, None, attrs["axis"], "multiplier")
    return [acc.with_dtype(zp.dtype)]


def _requantize_ref(xs, attrs, batch):
    acc, mult, zp = xs
    r = (acc.astype(np.float32) * _per_axis(mult, acc.ndim, attrs["axis"])).astype(np.float32)
    return [round_saturate(r, zp, to_dtype(zp.dtype), attrs["relu"])]


defop("requantize", ("acc", "multiplier", "zero_point"), _requantize_infer, _requantize_ref,
      attrs={"axis": Attr("int", -1), "relu": Attr("bool", False)}, differentiable=False,
      doc="saturate(round_half_even(f32(acc) * multiplier) + zero_point), clamped below at zero_point if relu")
