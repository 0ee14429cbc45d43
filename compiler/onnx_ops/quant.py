"""ONNX forms of the quantization ops: QDQ nodes and integer ops, each an exact equivalent.

quantize      QuantizeLinear (per axis when the scale is 1-d; saturation and round half to even
              as the IR defines them).
dequantize    DequantizeLinear for 8-bit data; for i32 data (which DequantizeLinear allows only
              with a zero point of 0) the IR's own steps: Cast to i64, Sub, Cast to f32, Mul.
matmul_integer MatMulInteger (per-column b zero point as ONNX allows).
conv2d_integer ConvInteger between NHWC/NCHW Transposes with explicit pads. ONNX pads x with its
              zero point, as the IR does. A per-channel w zero point (which onnxruntime's
              ConvInteger refuses) becomes ConvInteger with w_zero_point 0 minus
              w_zp[c] * (window sums of x - x_zp), the window sums being a ConvInteger with a
              kernel of ones: exact in i32.
requantize    Cast i32 -> f32, Mul by the multiplier (one f32 multiply), QuantizeLinear with scale
              1 (x / 1 is exact) and the zero point; relu is Max with the zero point.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from . import onnx_op
from .nn import KERNEL_TO_ONNX, TO_CHANNELS_FIRST, TO_CHANNELS_LAST, _explicit_pads


def _axis(node) -> dict:
    return {"axis": node.attrs["axis"]} if node.inputs[1].type.rank == 1 else {}


@onnx_op("quantize")
def _quantize(ctx, node, ins, outs):
    ctx.emit("QuantizeLinear", ins, out=outs[0], **_axis(node))


@onnx_op("dequantize")
def _dequantize(ctx, node, ins, outs):
    q, scale, zp = node.inputs
    if q.type.dtype.name != "i32":
        ctx.emit("DequantizeLinear", ins, out=outs[0], **_axis(node))
        return
    wide = [ctx.emit("Cast", [t], to=TensorProto.INT64) for t in ins[::2]]
    diff = ctx.emit("Cast", [ctx.emit("Sub", [wide[0], _along(ctx, wide[1], node, q.type.rank)])],
                    to=TensorProto.FLOAT)
    ctx.emit("Mul", [diff, _along(ctx, ins[1], node, q.type.rank)], out=outs[0])


def _along(ctx, name, node, rank):
    """A 0-d or [C] parameter shaped to broadcast along the node's axis."""
    if node.inputs[1].type.rank == 0:
        return name
    ax = node.attrs["axis"] % rank
    return ctx.emit("Reshape", [name, ctx.ints([-1] + [1] * (rank - 1 - ax), "per_axis_shape")])


@onnx_op("matmul_integer")
def _matmul_integer(ctx, node, ins, outs):
    ctx.emit("MatMulInteger", ins, out=outs[0])


@onnx_op("conv2d_integer")
def _conv2d_integer(ctx, node, ins, outs):
    x_t, w_t, _, wzp_t = (v.type for v in node.inputs)
    a = node.attrs
    kernel, strides, dilations = list(w_t.shape[:2]), list(a["strides"]), list(a["dilations"])
    conv = dict(kernel_shape=kernel, strides=strides, dilations=dilations, group=a["groups"],
                pads=_explicit_pads(x_t.shape[1:3], kernel, strides, dilations, a["padding"]))
    xt = ctx.emit("Transpose", [ins[0]], perm=TO_CHANNELS_FIRST[2])
    w = ctx.emit("Transpose", [ins[1]], perm=KERNEL_TO_ONNX[2])
    if wzp_t.rank == 0:
        y = ctx.emit("ConvInteger", [xt, w, ins[2], ins[3]], **conv)
    else:
        y = _conv_per_channel_zero_point(ctx, xt, w, ins, w_t, a["groups"], conv, node.outputs[0].type.shape[1:3])
    ctx.emit("Transpose", [y], out=outs[0], perm=TO_CHANNELS_LAST[2])


def _conv_per_channel_zero_point(ctx, xt, w, ins, w_t, groups, conv, out_hw):
    kh, kw, cin_g, cout = w_t.shape
    zero = ctx.const(np.array(0, np.int8), "w_zero")
    raw = ctx.emit("ConvInteger", [xt, w, ins[2], zero], **conv)
    ones = ctx.const(np.ones((groups, cin_g, kh, kw), np.int8), "window_ones")
    sums = ctx.emit("ConvInteger", [xt, ones, ins[2], zero], **conv)          # [N, groups, oh, ow]
    per_out = ctx.emit("Reshape", [ctx.emit("Cast", [ins[3]], to=TensorProto.INT32),
                                   ctx.ints([groups, cout // groups, 1, 1], "wzp_shape")])
    sums = ctx.emit("Unsqueeze", [sums, ctx.ints([2], "group_axis")])          # [N, g, 1, oh, ow]
    shift = ctx.emit("Mul", [sums, per_out])                                   # [N, g, cout/g, oh, ow]
    shift = ctx.emit("Reshape", [shift, ctx.ints([0, cout, *out_hw], "out_shape")])   # 0: keep N
    return ctx.emit("Sub", [raw, shift])


@onnx_op("requantize")
def _requantize(ctx, node, ins, outs):
    acc, mult, zp = node.inputs
    scaled = ctx.emit("Mul", [ctx.emit("Cast", [ins[0]], to=TensorProto.FLOAT), _along(ctx, ins[1], node, acc.type.rank)])
    one = ctx.const(np.array(1.0, np.float32), "unit_scale")
    if not node.attrs["relu"]:
        ctx.emit("QuantizeLinear", [scaled, one, ins[2]], out=outs[0])
        return
    ctx.emit("Max", [ctx.emit("QuantizeLinear", [scaled, one, ins[2]]), ins[2]], out=outs[0])
