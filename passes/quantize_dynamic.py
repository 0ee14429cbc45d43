"""dynamic-int8: Keras 3's int8 mode as a pass: int8 weights, activations quantized per row at run time.

A model quantized in place (`model.quantize("int8")`) traces each int8 kernel as
dequantize(q, 1 / kernel_scale, 0). This pass turns matmul(x, that) into Keras's computation
(keras/src/layers/core/dense.py `_int8_call`, quantizers.abs_max_quantize):
    s = 127 / (max(|x|, last axis) + 1e-7);  xq = i8(clip(round(x * s), -127, 127))
    y = f32(xq @ q) / (s * kernel_scale)
with the integer product as matmul_integer (exact i32 accumulation).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, i8

from .canonicalize import dce
from .manager import register_pass
from .quant_plan import is_weight
from .rewrite import Match, Rewriter, Rule, rewrite_graph

EPSILON = 1e-7       # keras.backend.epsilon()
QMAX = 127.0


def _kernel_scale(rw: Rewriter, m: Match, scale):
    """Keras's kernel_scale (127 / absmax): the reciprocal's operand, or 1 / the dequantize scale."""
    p = scale.producer
    if p is not None and p.op == "reciprocal":
        return p.inputs[0]
    return rw.new(m, "reciprocal", scale)


def _const(rw: Rewriter, m: Match, value, dtype=np.float32):
    return rw.new(m, "constant", value=np.asarray(value, dtype))


def _dynamic_matmul(rw: Rewriter, m: Match):
    x, w = m.inputs
    if (not x.dtype.is_float or w.is_param or not is_weight(w) or w.type.rank != 2
            or m.attrs["transpose_a"] or m.attrs["transpose_b"]):
        return None
    q, scale, zp = w.producer.inputs
    amax = rw.new(m, "reduce_max", rw.new(m, "abs", x), axes=[-1], keepdims=True)
    s = rw.new(m, "div", _const(rw, m, QMAX), rw.new(m, "add", amax, _const(rw, m, EPSILON)))
    r = rw.new(m, "round", rw.new(m, "mul", x, s))
    r = rw.new(m, "minimum", rw.new(m, "maximum", r, _const(rw, m, -QMAX)), _const(rw, m, QMAX))
    xq = rw.new(m, "cast", r, dtype=i8)
    acc = rw.new(m, "matmul_integer", xq, q, _const(rw, m, 0, np.int8), _const(rw, m, 0, np.int8))
    out_scale = rw.new(m, "mul", s, _kernel_scale(rw, m, scale))
    return rw.new(m, "div", rw.new(m, "cast", acc, dtype="f32"), out_scale)


@register_pass("dynamic-int8")
def dynamic_int8(graph: Graph) -> Graph:
    """Keras int8 mode: matmul with an int8 kernel -> per-row activation quantization + matmul_integer."""
    return dce(rewrite_graph(graph, [Rule(("matmul",), _dynamic_matmul)]))
