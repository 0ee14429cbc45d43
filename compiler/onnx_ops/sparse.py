"""ONNX form of sparse_matmul: MatMul with the dense kernel restored (its zeros written out).

ONNX has no sparse matmul that runtimes accelerate, so the pruned model exports as what it is:
a dense kernel with zeros. When the stored blocks are parameters with values (every graph the
sparsify pass makes) the kernel is one initializer named after the parameter it came from;
otherwise ONNX rebuilds it at run time: each stored block's column from the offsets, then a
ScatterND (reduction add, as blocks stored twice add up) of the values into zeros.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from kcompile.ir.ops.sparse import to_dense

from . import onnx_op
from .context import ELEM_TYPE


@onnx_op("sparse_matmul")
def _sparse_matmul(ctx, node, ins, outs):
    a, values, index, offsets = node.inputs
    known = ctx.graph.param_values
    k, block = a.type.shape[-1], node.attrs["block"]
    if all(v.is_param and v.param_name in known for v in (values, index, offsets)):
        arrays = [known[v.param_name] for v in (values, index, offsets)]
        w = ctx.const(to_dense(*arrays, k, block, node.attrs["layout"], node.attrs["n"]), node.attrs["weight"] or "kernel")
    elif node.attrs["layout"] == "windows":
        raise NotImplementedError("ONNX export of a sparse_matmul in the windows layout needs its values, index "
                                  "and offsets as parameters with known values")
    else:
        w = _scatter_kernel(ctx, ins[1:], k, node.outputs[0].type.shape[-1], block, a.type.dtype.name)
    ctx.emit("MatMul", [ins[0], w], out=outs[0])


def _scatter_kernel(ctx, ins, k: int, n: int, block, dtype: str) -> str:
    values, index, offsets = ins
    bk, bn = block
    count = ctx.emit("Shape", [index])                                              # [nblocks]
    p = ctx.emit("Range", [ctx.scalar(0, np.int64), ctx.emit("Squeeze", [count, ctx.ints([0])]),
                           ctx.scalar(1, np.int64)])
    # block p lies in the column of how many block-column ends offsets[1:-1] are <= p (the last
    # end, the block count, is never reached)
    upper = ctx.emit("Slice", [ctx.emit("Cast", [offsets], to=TensorProto.INT64), ctx.ints([1]), ctx.ints([n // bn])])
    past = ctx.emit("GreaterOrEqual", [ctx.emit("Unsqueeze", [p, ctx.ints([1])]),
                                       ctx.emit("Unsqueeze", [upper, ctx.ints([0])])])
    column = ctx.emit("ReduceSum", [ctx.emit("Cast", [past], to=TensorProto.INT64), ctx.ints([1])], keepdims=0)
    shape = ctx.emit("Concat", [count, ctx.ints([bk, bn])], axis=0)                 # [nblocks, bk, bn]
    rows = ctx.emit("Add", [_blockwise(ctx, ctx.emit("Cast", [index], to=TensorProto.INT64), bk),
                            ctx.const(np.arange(bk, dtype=np.int64).reshape(1, bk, 1), "rows")])
    cols = ctx.emit("Add", [_blockwise(ctx, column, bn), ctx.const(np.arange(bn, dtype=np.int64).reshape(1, 1, bn),
                                                                     "cols")])
    where = ctx.emit("Concat", [ctx.emit("Unsqueeze", [ctx.emit("Expand", [t, shape]), ctx.ints([3])])
                                for t in (rows, cols)], axis=3)                      # [nblocks, bk, bn, 2]
    zeros = ctx.emit("ConstantOfShape", [ctx.ints([k, n], "shape")],
                     value=helper.make_tensor("zero", ELEM_TYPE[dtype], [1], [0]))
    blocks = ctx.emit("Reshape", [values, shape])
    return ctx.emit("ScatterND", [zeros, where, blocks], reduction="add")


def _blockwise(ctx, first, size: int) -> str:
    """first * size as [nblocks, 1, 1] (the block's first row or column)."""
    return ctx.emit("Unsqueeze", [ctx.emit("Mul", [first, ctx.scalar(size, np.int64)]), ctx.ints([1, 2])])
