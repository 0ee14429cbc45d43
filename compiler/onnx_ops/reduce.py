"""ONNX forms of the reductions (axes as an input, opset 18) and argmax/argmin."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from . import onnx_op
from .context import ELEM_TYPE

ONNX_REDUCE = {
    "reduce_sum": "ReduceSum", "reduce_mean": "ReduceMean", "reduce_max": "ReduceMax",
    "reduce_min": "ReduceMin", "reduce_prod": "ReduceProd",
}


def _reduce(ctx, op_type, x, node, out=None):
    axes = node.attrs["axes"]
    inputs = [x, ctx.ints(axes, "axes")] if axes else [x]  # no axes input: reduce over all axes
    return ctx.emit(op_type, inputs, out=out, keepdims=int(node.attrs["keepdims"]))


@onnx_op(*ONNX_REDUCE)
def _reduction(ctx, node, ins, outs):
    dt = node.inputs[0].type.dtype
    op_type = ONNX_REDUCE[node.op]
    if node.op == "reduce_mean" and dt.is_int:
        # NumPy averages integers in float64 and truncates the mean back: do exactly that
        wide = ctx.emit("Cast", ins, to=TensorProto.DOUBLE)
        ctx.emit("Cast", [_reduce(ctx, op_type, wide, node)], out=outs[0], to=ELEM_TYPE[dt.name])
    elif node.op in ("reduce_sum", "reduce_prod") and dt.np in (np.int8, np.uint8):
        # ONNX sums and products have no 8-bit form; NumPy accumulates them in int64 and wraps back
        wide = ctx.emit("Cast", ins, to=TensorProto.INT64)
        ctx.emit("Cast", [_reduce(ctx, op_type, wide, node)], out=outs[0], to=ELEM_TYPE[dt.name])
    else:
        _reduce(ctx, op_type, ins[0], node, out=outs[0])


@onnx_op("argmax", "argmin")
def _arg(ctx, node, ins, outs):
    op_type = "ArgMax" if node.op == "argmax" else "ArgMin"
    # select_last_index=0: the first extremum, as NumPy
    ctx.emit(op_type, ins, out=outs[0], axis=node.attrs["axis"], keepdims=int(node.attrs["keepdims"]),
             select_last_index=0)
