"""ONNX forms of the NHWC nn ops: softmax, conv1d/conv2d, pooling, conv2d_input_grad.

ONNX convolutions and pools are channels-first, so each becomes Transpose -> op -> Transpose
(runtimes fold the kernel transposes into the weights at load time). Keras "same"/"causal"
padding becomes explicit, possibly asymmetric, pads.
"""
from __future__ import annotations

from kcompile.ir.ops.nn import conv_geometry

from . import onnx_op, unsupported

TO_CHANNELS_FIRST = {1: [0, 2, 1], 2: [0, 3, 1, 2]}
TO_CHANNELS_LAST = {1: [0, 2, 1], 2: [0, 2, 3, 1]}
KERNEL_TO_ONNX = {1: [2, 1, 0], 2: [3, 2, 0, 1]}  # (k..., cin/g, cout) -> (cout, cin/g, k...)


@onnx_op("softmax", "log_softmax")
def _softmax(ctx, node, ins, outs):
    ctx.emit("Softmax" if node.op == "softmax" else "LogSoftmax", ins, out=outs[0], axis=node.attrs["axis"])


def _as_list(v):
    return list(v) if isinstance(v, (tuple, list)) else [v]


def _explicit_pads(spatial, kernel, strides, dilations, padding):
    """ONNX pads [begin..., end...] for Keras padding along each spatial axis."""
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        if padding == "causal":
            b, e = (k - 1) * d, 0
        else:
            _, b, e = conv_geometry(size, k, s, d, padding)
        begins.append(b)
        ends.append(e)
    return begins + ends


def _channels_first_op(ctx, nsp, op_type, x, extra_inputs, out, **attrs):
    xt = ctx.emit("Transpose", [x], perm=TO_CHANNELS_FIRST[nsp])
    y = ctx.emit(op_type, [xt] + extra_inputs, **attrs)
    ctx.emit("Transpose", [y], out=out, perm=TO_CHANNELS_LAST[nsp])


@onnx_op("conv1d", "conv2d")
def _conv(ctx, node, ins, outs):
    nsp = 1 if node.op == "conv1d" else 2
    x_t, w_t = node.inputs[0].type, node.inputs[1].type
    a = node.attrs
    kernel, strides, dilations = list(w_t.shape[:nsp]), _as_list(a["strides"]), _as_list(a["dilations"])
    pads = _explicit_pads(x_t.shape[1:-1], kernel, strides, dilations, a["padding"])
    w = ctx.emit("Transpose", [ins[1]], perm=KERNEL_TO_ONNX[nsp])
    _channels_first_op(ctx, nsp, "Conv", ins[0], [w], outs[0], kernel_shape=kernel, strides=strides,
                       dilations=dilations, pads=pads, group=a["groups"])


@onnx_op("conv2d_input_grad")
def _conv2d_input_grad(ctx, node, ins, outs):
    """The input gradient of a convolution is the transposed convolution with the same kernel."""
    a = node.attrs
    h_w = a["input_shape"][1:3]
    kernel = list(node.inputs[1].type.shape[:2])
    out_hw = node.inputs[0].type.shape[1:3]
    pads = _explicit_pads(h_w, kernel, a["strides"], a["dilations"], a["padding"])
    # output_padding restores the rows/columns that the forward convolution's floor dropped
    out_pad = [size - ((o - 1) * s + (k - 1) * d + 1 - b - e)
               for size, o, k, s, d, b, e in zip(h_w, out_hw, kernel, a["strides"], a["dilations"],
                                                pads[:2], pads[2:])]
    w = ctx.emit("Transpose", [ins[1]], perm=KERNEL_TO_ONNX[2])
    _channels_first_op(ctx, 2, "ConvTranspose", ins[0], [w], outs[0], kernel_shape=kernel,
                       strides=list(a["strides"]), dilations=list(a["dilations"]), pads=pads,
                       output_padding=out_pad, group=a["groups"])


@onnx_op("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d")
def _pool(ctx, node, ins, outs):
    nsp = int(node.op[-2])
    a = node.attrs
    pool, strides = list(a["pool_size"]), list(a["strides"])
    pads = _explicit_pads(node.inputs[0].type.shape[1:-1], pool, strides, [1] * nsp, a["padding"])
    attrs = dict(kernel_shape=pool, strides=strides, pads=pads)
    if node.op.startswith("max"):
        _channels_first_op(ctx, nsp, "MaxPool", ins[0], [], outs[0], **attrs)
    else:  # Keras "same" averages only the real inputs under each window
        _channels_first_op(ctx, nsp, "AveragePool", ins[0], [], outs[0], count_include_pad=0, **attrs)


unsupported("max_pool2d_grad", "it routes each gradient to the first maximum of its window, and ONNX "
                               "MaxPool leaves the choice among tied maxima unspecified")
unsupported("conv2d_filter_grad", "it is a training-only gradient op; ONNX export covers inference graphs "
                                  "(compile training steps with the native backend)")
unsupported("avg_pool2d_grad", "it is a training-only gradient op; ONNX export covers inference graphs "
                               "(compile training steps with the native backend)")
