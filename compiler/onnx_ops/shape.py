"""ONNX forms of the layout ops: transpose, reshape, broadcast_to, (un)squeeze, concat, split, slice, pad."""
from __future__ import annotations

import numpy as np

from . import onnx_op


@onnx_op("transpose")
def _transpose(ctx, node, ins, outs):
    ctx.emit("Transpose", ins, out=outs[0], perm=list(node.attrs["perm"]))


@onnx_op("reshape")
def _reshape(ctx, node, ins, outs):
    # The output type has the -1 resolved already; only the batch symbol is left to bind.
    shape = node.outputs[0].type.shape
    batched = bool(shape) and isinstance(shape[0], str)
    rest = list(shape[1:]) if batched else list(shape)
    if batched and 0 not in rest:
        ctx.emit("Reshape", [ins[0], ctx.ints([0] + rest, "shape")], out=outs[0])  # 0 copies N
    elif batched:  # a literal 0 elsewhere: read N from the input and keep zeros literal
        ctx.emit("Reshape", [ins[0], ctx.shape_with_batch(shape)], out=outs[0], allowzero=1)
    else:
        ctx.emit("Reshape", [ins[0], ctx.ints(rest, "shape")], out=outs[0], allowzero=int(0 in rest))


@onnx_op("broadcast_to")
def _broadcast_to(ctx, node, ins, outs):
    x, target = node.inputs[0].type, tuple(node.attrs["shape"])
    if x.has_batch and len(target) == x.rank:  # x carries N itself: 1 there broadcasts to N
        shape = ctx.ints((1,) + target[1:], "shape")
    else:
        shape = ctx.shape_with_batch(target)
    ctx.emit("Expand", [ins[0], shape], out=outs[0])


@onnx_op("expand_dims")
def _expand_dims(ctx, node, ins, outs):
    ctx.emit("Unsqueeze", [ins[0], ctx.ints(node.attrs["axes"], "axes")], out=outs[0])


@onnx_op("squeeze")
def _squeeze(ctx, node, ins, outs):
    ctx.emit("Squeeze", [ins[0], ctx.ints(node.attrs["axes"], "axes")], out=outs[0])


@onnx_op("concat")
def _concat(ctx, node, ins, outs):
    ctx.emit("Concat", ins, out=outs[0], axis=node.attrs["axis"])


@onnx_op("split")
def _split(ctx, node, ins, outs):
    ctx.emit("Split", [ins[0], ctx.ints(node.attrs["sections"], "sections")], outs=outs, axis=node.attrs["axis"])


@onnx_op("slice")
def _slice(ctx, node, ins, outs):
    a = node.attrs
    if not a["axes"]:
        ctx.emit("Identity", ins, out=outs[0])
        return
    steps = a["steps"] or (1,) * len(a["axes"])
    # ONNX Slice clamps starts/ends into range like Python slicing does for positive steps
    ctx.emit("Slice", [ins[0], ctx.ints(a["starts"], "starts"), ctx.ints(a["ends"], "ends"),
                       ctx.ints(a["axes"], "axes"), ctx.ints(steps, "steps")], out=outs[0])


@onnx_op("pad")
def _pad(ctx, node, ins, outs):
    p = node.attrs["pads"]
    onnx_pads = list(p[0::2]) + list(p[1::2])  # (before, after) pairs -> all befores, then all afters
    dt = node.inputs[0].type.dtype.np
    value = ctx.scalar(np.asarray(node.attrs["value"]).astype(dt), dt, "pad_value")
    ctx.emit("Pad", [ins[0], ctx.ints(onnx_pads, "pads"), value], out=outs[0], mode="constant")
