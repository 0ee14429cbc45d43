"""ONNX forms of the indexing ops: gather, scatter_add (ScatterND with add), one_hot."""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, numpy_helper

from . import onnx_op
from .context import ELEM_TYPE


def _as_int64(ctx, node, i, name):
    if node.inputs[i].type.dtype.np == np.int64:
        return name
    return ctx.emit("Cast", [name], to=TensorProto.INT64)  # ONNX indices are int32/int64 only


@onnx_op("gather")
def _gather(ctx, node, ins, outs):
    idx = _as_int64(ctx, node, 1, ins[1])
    ctx.emit("Gather", [ins[0], idx], out=outs[0], axis=node.attrs["axis"])


@onnx_op("scatter_add")
def _scatter_add(ctx, node, ins, outs):
    """Move the scatter axis first, flatten the indices to K rows, ScatterND(add) into zeros, move back."""
    shape = tuple(node.attrs["shape"])
    ax = node.attrs["axis"] % len(shape)
    pre, post = list(shape[:ax]), list(shape[ax + 1:])
    idx_t = node.inputs[0].type
    k = len(idx_t.shape)
    updates = _transpose_if_needed(ctx, ins[1], list(range(ax, ax + k)) + list(range(ax)) +
                                   list(range(ax + k, ax + k + len(post))))
    rows = ctx.emit("Reshape", [updates, _rows_shape(ctx, idx_t, pre + post)],
                    allowzero=int(0 in pre + post))
    indices = ctx.emit("Reshape", [_as_int64(ctx, node, 0, ins[0]), ctx.ints([-1, 1], "index_shape")])
    dt = node.inputs[1].type.dtype.np
    zeros = ctx.emit("ConstantOfShape", [ctx.ints([shape[ax]] + pre + post, "shape")],
                     value=numpy_helper.from_array(np.zeros(1, dt)))
    moved = [outs[0]] if ax == 0 else None
    summed = ctx.emit("ScatterND", [zeros, indices, rows], outs=moved, reduction="add")
    if ax != 0:
        back = list(range(1, ax + 1)) + [0] + list(range(ax + 1, len(shape)))
        ctx.emit("Transpose", [summed], out=outs[0], perm=back)


def _transpose_if_needed(ctx, name, perm):
    return name if perm == sorted(perm) else ctx.emit("Transpose", [name], perm=perm)


def _rows_shape(ctx, idx_t, rest):
    """Shape [K] + rest with K = number of indices (read from the batch size when batched)."""
    if not idx_t.has_batch:
        return ctx.ints([math.prod(idx_t.shape)] + rest, "rows_shape")
    if 0 not in rest:
        return ctx.ints([-1] + rest, "rows_shape")
    k = ctx.emit("Mul", [ctx.batch_size(), ctx.ints([math.prod(idx_t.shape[1:])], "rows_per_item")])
    return ctx.emit("Concat", [k, ctx.ints(rest, "rest")], axis=0)


@onnx_op("one_hot")
def _one_hot(ctx, node, ins, outs):
    # Not ONNX OneHot: it wraps negative indices, while here any index outside [0, depth) gives zeros.
    column = ctx.emit("Unsqueeze", [_as_int64(ctx, node, 0, ins[0]), ctx.ints([-1], "axes")])
    hit = ctx.emit("Equal", [column, ctx.ints(range(node.attrs["depth"]), "classes")])
    ctx.emit("Cast", [hit], out=outs[0], to=ELEM_TYPE[node.attrs["dtype"].name])
