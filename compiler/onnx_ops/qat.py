"""ONNX form of fake_quantize: clamp to the nudged range, then QuantizeLinear + DequantizeLinear (uint8).

The grid (scale, zero point) is computed from lo and hi with the same steps as the IR op
(ir/ops/qat.py `grid`), so a QAT model exports as the QDQ pairs runtimes recognise.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from kcompile.ir.ops.qat import grid

from . import onnx_op

_ONNX = {"minimum": "Min", "maximum": "Max", "div": "Div", "sub": "Sub", "mul": "Mul", "add": "Add",
         "round": "Round"}


@onnx_op("fake_quantize")
def _fake_quantize(ctx, node, ins, outs):
    x, lo, hi = ins
    scale, zp, nmin, nmax = grid(lambda op, *a: ctx.emit(_ONNX[op], list(a)),
                                 lambda v: ctx.scalar(v, node.inputs[0].type.dtype.np, "fq"), lo, hi, node.attrs["narrow"])
    zp8 = ctx.emit("Cast", [zp], to=TensorProto.UINT8)
    clamped = ctx.emit("Min", [ctx.emit("Max", [x, nmin]), nmax])
    axis = {"axis": -1} if node.inputs[1].type.rank == 1 else {}
    q = ctx.emit("QuantizeLinear", [clamped, scale, zp8], **axis)
    ctx.emit("DequantizeLinear", [q, scale, zp8], out=outs[0], **axis)
