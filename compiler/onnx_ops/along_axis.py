"""ONNX forms of cumsum (CumSum) and top_k (TopK, whose int64 indices are cast to the IR's int32)."""
from __future__ import annotations

from onnx import TensorProto

from . import onnx_op


@onnx_op("cumsum")
def _cumsum(ctx, node, ins, outs):
    axis = ctx.scalar(node.attrs["axis"], "int64", "axis")
    ctx.emit("CumSum", [ins[0], axis], out=outs[0], reverse=int(node.attrs["reverse"]))


@onnx_op("top_k")
def _top_k(ctx, node, ins, outs):
    # ONNX TopK puts the lower index first among equal values, as the IR op does.
    k = ctx.ints([node.attrs["k"]], "k")
    _, indices = ctx.emit("TopK", [ins[0], k], outs=[outs[0], ctx.fresh(f"{ctx.label}/indices")], axis=-1,
                          largest=1, sorted=1)
    ctx.emit("Cast", [indices], out=outs[1], to=TensorProto.INT32)
