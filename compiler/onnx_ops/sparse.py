"""ONNX form of sparse_matmul: MatMul with the dense kernel restored (its zeros written out).

ONNX has no sparse matmul that runtimes accelerate, so the pruned model exports as what it is:
a dense kernel with zeros. When the stored blocks are parameters with values (every graph the
sparsify pass makes) the kernel is one initializer named after the parameter it came from;
otherwise ONNX rebuilds it at run time: each stored block's column from the offsets, then a
ScatterND (reduction add, as blocks stored twice add up) of the values into zeros (the "windows"
layout likewise: each step's (panel, window) group from the offsets, empty slots adding 0).
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from kcompile.ir.ops.sparse import to_dense, window_block

from . import onnx_op
from .context import ELEM_TYPE
from .nn import _explicit_pads

SCALAR = {"f32": np.float32, "f64": np.float64, "i32": np.int32}   # a kernel's element types here


@onnx_op("sparse_matmul")
def _sparse_matmul(ctx, node, ins, outs):
    a, values, index, offsets = node.inputs
    known = ctx.graph.param_values
    k, block = a.type.shape[-1], node.attrs["block"]
    if all(v.is_param and v.param_name in known for v in (values, index, offsets)):
        arrays = [known[v.param_name] for v in (values, index, offsets)]
        dense = to_dense(*arrays, k, block, node.attrs["layout"], node.attrs["n"])
        w = ctx.const(dense, node.attrs["weight"] or "kernel")
    elif node.attrs["layout"] == "windows":
        w = _scatter_windows(ctx, ins[1:], k, node.attrs["n"], block, values.type.shape[0], a.type.dtype.name)
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


def _scatter_windows(ctx, ins, k: int, n: int, block, slots: int, dtype: str) -> str:
    """The dense kernel of a "windows" layout (ir/ops/sparse.py) rebuilt from run-time arrays."""
    values, index, offsets = ins
    g, c, p = window_block(block)
    nwin, npan, steps, c = -(-k // g), -(-n // c), slots // (c * p), c * p    # c: slots per step from here on
    i64 = TensorProto.INT64
    offsets = ctx.emit("Cast", [offsets], to=i64)
    first = nwin * npan + 1
    order_in = ctx.emit("Slice", [offsets, ctx.ints([first]), ctx.ints([first + k])])
    order_out = ctx.emit("Slice", [offsets, ctx.ints([first + k]), ctx.ints([first + k + n])])
    # step t lies in the group of how many group ends offsets[1:-1] are <= t
    ends = ctx.emit("Slice", [offsets, ctx.ints([1]), ctx.ints([nwin * npan])])
    past = ctx.emit("GreaterOrEqual", [ctx.const(np.arange(steps, dtype=np.int64).reshape(steps, 1), "steps"),
                                       ctx.emit("Unsqueeze", [ends, ctx.ints([0])])])
    group = ctx.emit("ReduceSum", [ctx.emit("Cast", [past], to=i64), ctx.ints([1])], keepdims=1)    # [steps, 1]
    window_row = ctx.emit("Mul", [ctx.emit("Mod", [group, ctx.scalar(nwin, np.int64)]), ctx.scalar(g, np.int64)])
    panel_col = ctx.emit("Mul", [ctx.emit("Div", [group, ctx.scalar(nwin, np.int64)]), ctx.scalar(c // p, np.int64)])
    idx = ctx.emit("Reshape", [ctx.emit("Cast", [index], to=i64), ctx.ints([steps, c])])
    q = ctx.emit("Add", [window_row, idx])                                  # window position, [steps, C]
    j = ctx.emit("Expand", [ctx.emit("Add", [panel_col, ctx.const(np.arange(c, dtype=np.int64).reshape(1, c) // p,
                                                                       "lanes")]), ctx.ints([steps, c])])
    # a slot holds an element if its index is in the window (not 255) and its positions are < K, < N
    ok = ctx.emit("And", [ctx.emit("And", [ctx.emit("Less", [idx, ctx.scalar(g, np.int64)]),
                                           ctx.emit("Less", [q, ctx.scalar(k, np.int64)])]),
                          ctx.emit("Less", [j, ctx.scalar(n, np.int64)])])
    zero = ctx.scalar(0, np.int64)
    rows = ctx.emit("Gather", [order_in, ctx.emit("Where", [ok, q, zero])], axis=0)
    cols = ctx.emit("Gather", [order_out, ctx.emit("Where", [ok, j, zero])], axis=0)
    where = ctx.emit("Concat", [ctx.emit("Unsqueeze", [t, ctx.ints([2])]) for t in (rows, cols)], axis=2)
    vals = ctx.emit("Where", [ok, ctx.emit("Reshape", [values, ctx.ints([steps, c])]),
                              ctx.scalar(0, SCALAR[dtype])])
    zeros = ctx.emit("ConstantOfShape", [ctx.ints([k, n], "shape")],
                     value=helper.make_tensor("zero", ELEM_TYPE[dtype], [1], [0]))
    return ctx.emit("ScatterND", [zeros, where, vals], reduction="add")      # empty slots add 0


@onnx_op("sparse_qmatmul")
def _sparse_qmatmul(ctx, node, ins, outs):
    """MatMulInteger with the dense int8 kernel (weight zero point 0), as matmul_integer exports; a kernel
    known only at run time (or whose repeated slots sum past int8) goes through an i32 MatMul instead."""
    a, values, index, offsets, _ = node.inputs
    known = ctx.graph.param_values
    k, n, block = a.type.shape[-1], node.attrs["n"], node.attrs["block"]
    name = node.attrs["weight"] or "kernel"
    if all(v.is_param and v.param_name in known for v in (values, index, offsets)):
        dense = to_dense(*(np.asarray(known[v.param_name]).astype(np.int64) if v is values else known[v.param_name]
                           for v in (values, index, offsets)), k, block, "windows", n)
        if dense.min(initial=0) >= -128 and dense.max(initial=0) <= 127:
            ctx.emit("MatMulInteger", [ins[0], ctx.const(dense.astype(np.int8), name),
                                       ins[4], ctx.const(np.array(0, np.int8), "w_zero")], out=outs[0])
            return
        w = ctx.const(dense.astype(np.int32), name)
    else:
        wide = ctx.emit("Cast", [ins[1]], to=TensorProto.INT32)
        w = _scatter_windows(ctx, [wide, ins[2], ins[3]], k, n, block, values.type.shape[0], "i32")
    x = ctx.emit("Sub", [ctx.emit("Cast", [t], to=TensorProto.INT32) for t in (ins[0], ins[4])])
    ctx.emit("MatMul", [x, w], out=outs[0])


@onnx_op("patches")
def _patches(ctx, node, ins, outs):
    """Pad (with pad_value), flatten the padded spatial axes, Gather every output position's taps by a
    constant index, reshape: a copy, exact for every value (inf and NaN included) and every dtype
    (8-bit inputs stay 8-bit; ONNX's Pad and Gather take them)."""
    a, x_t = node.attrs, node.inputs[0].type
    nsp, c = len(a["kernel"]), x_t.shape[-1]
    spatial = list(x_t.shape[1:-1])
    pads = _explicit_pads(spatial, list(a["kernel"]), list(a["strides"]), list(a["dilations"]), a["padding"])
    x = ins[0]
    if any(pads):   # NHWC pads: [0, begins..., 0, 0, ends..., 0]
        nhwc = [0, *pads[:nsp], 0, 0, *pads[nsp:], 0]
        fill = np.asarray(a["pad_value"]).astype(x_t.dtype.np)
        x = ctx.emit("Pad", [x, ctx.ints(nhwc, "pads"), ctx.const(fill, "pad_value")])
    padded = [size + pads[i] + pads[nsp + i] for i, size in enumerate(spatial)]
    out_spatial = list(node.outputs[0].type.shape[1:-1])
    # flat index into the padded spatial axes of tap (k...) of output position (o...), taps innermost
    grids = np.meshgrid(*[np.arange(o) for o in out_spatial], *[np.arange(k) for k in a["kernel"]], indexing="ij")
    flat = np.zeros(grids[0].shape, np.int64)
    for axis in range(nsp):
        coord = grids[axis] * a["strides"][axis] + grids[nsp + axis] * a["dilations"][axis]
        flat = flat * padded[axis] + coord
    rows = ctx.emit("Reshape", [x, ctx.ints([0, -1, c], "rows_shape")])
    taken = ctx.emit("Gather", [rows, ctx.ints(flat.reshape(-1), "patch_index")], axis=1)
    ctx.emit("Reshape", [taken, ctx.ints([0, *out_spatial, int(np.prod(a["kernel"])) * c], "patches_shape")],
             out=outs[0])
