"""fake_quantize: quantization-aware training's quantize-then-dequantize, with TF's nudged range.

fake_quantize(x, lo, hi) {narrow} -> x's float type, as tf.quantization.fake_quant_with_min_max_vars
(num_bits=8): lo and hi broadcast against x (0-d per tensor, [C] per channel of the last axis).
The range is widened to hold 0, then nudged so that 0 is exactly representable:
    qmin, qmax = (1 if narrow else 0), 255
    scale = max((max(hi, 0) - min(lo, 0)) / (qmax - qmin), TINY)
    zp    = clamp(round(qmin - min(lo, 0) / scale), qmin, qmax)
    nmin, nmax = (qmin - zp) * scale, (qmax - zp) * scale
    y = round((clamp(x, nmin, nmax) - nmin) / scale) * scale + nmin      (round half to even)
The same grid as quantize/dequantize with an int8 zero point zp - 128 (narrow: symmetric int8
weights in [-127, 127]). `expand` writes this once as elementwise ops: the NumPy reference runs it
in f32, the native lowering emits the same ops in one fused loop, so the two agree bit for bit.
Its gradient (passes/grad_rules/qat.py) is TF's straight-through estimator.
"""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import broadcast_shapes, float_only, require, same_dtype

TINY = 1e-30    # a scale for an empty range [0, 0]: every x then maps to 0


def grid(emit, const, lo, hi, narrow: bool) -> tuple:
    """(scale, zero point in [qmin, qmax] as a float, nmin, nmax) of the nudged range."""
    qmin, qmax = (1.0 if narrow else 0.0), 255.0
    lo = emit("minimum", lo, const(0.0))
    hi = emit("maximum", hi, const(0.0))
    scale = emit("maximum", emit("div", emit("sub", hi, lo), const(qmax - qmin)), const(TINY))
    zp = emit("round", emit("sub", const(qmin), emit("div", lo, scale)))
    zp = emit("minimum", emit("maximum", zp, const(qmin)), const(qmax))
    return scale, zp, emit("mul", emit("sub", const(qmin), zp), scale), emit("mul", emit("sub", const(qmax), zp), scale)


def expand(emit, const, x, lo, hi, narrow: bool):
    """The op as elementwise steps: emit(op, *operands) and const(float) build them; (y, nmin, nmax)."""
    scale, _, nmin, nmax = grid(emit, const, lo, hi, narrow)
    clamped = emit("minimum", emit("maximum", x, nmin), nmax)
    steps = emit("round", emit("div", emit("sub", clamped, nmin), scale))
    return emit("add", emit("mul", steps, scale), nmin), nmin, nmax


_NUMPY = {"minimum": np.minimum, "maximum": np.maximum, "div": np.divide, "sub": np.subtract,
          "mul": np.multiply, "add": np.add, "round": np.rint}


def nudged(x, lo, hi, narrow: bool) -> tuple:
    """(y, nmin, nmax) in NumPy, in x's float type: the reference, and the range the gradient masks with."""
    dt = np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.dtype(np.float32)
    with np.errstate(all="ignore"):
        return expand(lambda op, *a: np.asarray(_NUMPY[op](*a), dt), dt.type,
                      *(np.asarray(v, dt) for v in (x, lo, hi)), narrow)


def _infer(ts, attrs):
    x, lo, hi = ts
    same_dtype(ts)
    float_only(x, "fake_quantize")
    require(lo.shape == hi.shape and lo.rank <= 1, f"fake_quantize: lo and hi must share a 0-d or [C] shape, "
                                                   f"got {lo} and {hi}")
    require(lo.rank == 0 or (x.rank >= 1 and x.shape[-1] == lo.shape[0]),
            f"fake_quantize: a per-channel range {lo} must match the last axis of {x}")
    return [TensorType(broadcast_shapes(x.shape, lo.shape), x.dtype)]


defop("fake_quantize", ("x", "lo", "hi"), _infer,
      lambda xs, attrs, batch: [nudged(*xs, attrs["narrow"])[0]],
      attrs={"narrow": Attr("bool", False)},
      doc="8-bit quantize-dequantize on TF's nudged [lo, hi] grid (QAT); straight-through gradient")
