"""ONNX form of matmul: MatMul (NumPy batching), with Transposes for transposed operands."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from . import onnx_op
from .context import ELEM_TYPE


def swap_last_two(ctx, name: str, rank: int) -> str:
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return ctx.emit("Transpose", [name], perm=perm)


@onnx_op("matmul")
def _matmul(ctx, node, ins, outs):
    a, b = ins
    if node.attrs["transpose_a"]:
        a = swap_last_two(ctx, a, node.inputs[0].type.rank)
    if node.attrs["transpose_b"]:
        b = swap_last_two(ctx, b, node.inputs[1].type.rank)
    dt = node.inputs[0].type.dtype
    if dt.np in (np.int8, np.uint8):
        # ONNX MatMul has no 8-bit form (MatMulInteger widens differently); 32-bit wraps back the same
        a, b = (ctx.emit("Cast", [t], to=TensorProto.INT32) for t in (a, b))
        ctx.emit("Cast", [ctx.emit("MatMul", [a, b])], out=outs[0], to=ELEM_TYPE[dt.name])
    else:
        ctx.emit("MatMul", [a, b], out=outs[0])
