"""ONNX form of conv2d_transpose: ConvTranspose between NHWC<->NCHW transposes.

ONNX's output size is (in - 1) * s + eff - pad_begin - pad_end + output_padding; the padding before
is the op's, and the end is cut by pad_end or, where the op's output reaches past the last tap,
extended by output_padding (always less than the stride, as Keras requires).
"""
from __future__ import annotations

from kcompile.ir.ops.conv_transpose import transpose_geometries

from . import onnx_op
from .nn import KERNEL_TO_ONNX, _channels_first_op


@onnx_op("conv2d_transpose")
def _conv2d_transpose(ctx, node, ins, outs):
    x_t, w_t = node.inputs[0].type, node.inputs[1].type
    a = node.attrs
    kernel = list(w_t.shape[:2])
    begins, ends, extra = [], [], []
    for (size, before), n, k, s, d in zip(transpose_geometries(x_t.shape, kernel, a), x_t.shape[1:3], kernel,
                                          a["strides"], a["dilations"]):
        after = (n - 1) * s + (k - 1) * d + 1 - before - size
        begins.append(before)
        ends.append(max(after, 0))
        extra.append(max(-after, 0))
    w = ctx.emit("Transpose", [ins[1]], perm=KERNEL_TO_ONNX[2])   # (kh, kw, out, in) -> (in, out, kh, kw)
    _channels_first_op(ctx, 2, "ConvTranspose", ins[0], [w], outs[0], kernel_shape=kernel,
                       strides=list(a["strides"]), dilations=list(a["dilations"]), pads=begins + ends,
                       output_padding=extra)
