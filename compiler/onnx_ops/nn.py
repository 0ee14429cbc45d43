"""ONNX forms of the NHWC nn ops: softmax, conv1d/conv2d, pooling, and the conv/pool gradients.

ONNX convolutions and pools are channels-first, so each becomes Transpose -> op -> Transpose
(runtimes fold the kernel transposes into the weights at load time). Keras "same"/"causal"
padding becomes explicit, possibly asymmetric, pads.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir.ops.nn import _pool_counts, conv_geometry

from . import onnx_op

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
    kernel = list(node.inputs[1].type.shape[:2])
    w = ctx.emit("Transpose", [ins[1]], perm=KERNEL_TO_ONNX[2])
    _transposed_conv(ctx, ins[0], w, outs[0], a["input_shape"][1:3], node.inputs[0].type.shape[1:3], kernel,
                     list(a["strides"]), list(a["dilations"]), a["padding"], a["groups"])


@onnx_op("avg_pool2d_grad")
def _avg_pool2d_grad(ctx, node, ins, outs):
    """Each output's gradient, divided by its window's count of real inputs, spread over the window:
    a depthwise transposed convolution with a kernel of ones."""
    a = node.attrs
    pool, channels = list(a["pool_size"]), a["input_shape"][3]
    dtype = node.inputs[0].type.dtype.np
    counts = _pool_counts(a["input_shape"], {k: a[k] for k in ("pool_size", "strides", "padding")}, dtype)
    share = ctx.emit("Div", [ins[0], ctx.const(counts, "window_counts")])
    ones = ctx.const(np.ones((channels, 1, *pool), dtype), "ones_kernel")
    _transposed_conv(ctx, share, ones, outs[0], a["input_shape"][1:3], node.inputs[0].type.shape[1:3], pool,
                     list(a["strides"]), [1, 1], a["padding"], channels)


def _transposed_conv(ctx, dy, w, out, in_hw, out_hw, kernel, strides, dilations, padding, groups):
    pads = _explicit_pads(in_hw, kernel, strides, dilations, padding)
    _channels_first_op(ctx, 2, "ConvTranspose", dy, [w], out, kernel_shape=kernel, strides=strides,
                       dilations=dilations, pads=pads, group=groups,
                       output_padding=_output_padding(in_hw, out_hw, kernel, strides, dilations, pads))


def _output_padding(in_hw, out_hw, kernel, strides, dilations, pads):
    """The rows/columns that the forward op's floor dropped, restored by a transposed convolution."""
    return [size - ((o - 1) * s + (k - 1) * d + 1 - b - e)
            for size, o, k, s, d, b, e in zip(in_hw, out_hw, kernel, strides, dilations, pads[:2], pads[2:])]


@onnx_op("conv2d_filter_grad")
def _conv2d_filter_grad(ctx, node, ins, outs):
    """dw[i,j,c,o] = sum over n,y,x of x_pad[n, y*s + i*d, x*s + j*d, c] * dy[n,y,x,o]: a convolution
    of x (channels as the batch, the batch as channels) with dy as the kernel, strides and dilations
    swapped, one per group; then the (kh, kw) corner of the result."""
    a = node.attrs
    kh, kw, _, cout = a["filter_shape"]
    x_t, dy_t = node.inputs[0].type, node.inputs[1].type
    g = a["groups"]
    pads = _explicit_pads(x_t.shape[1:3], [kh, kw], a["strides"], a["dilations"], a["padding"])
    xs = _split_channels(ctx, ctx.emit("Transpose", [ins[0]], perm=[3, 0, 1, 2]), x_t.shape[3], g)
    dys = _split_channels(ctx, ctx.emit("Transpose", [ins[1]], perm=[3, 0, 1, 2]), cout, g)
    parts = [ctx.emit("Conv", [x, dy], kernel_shape=list(dy_t.shape[1:3]), strides=list(a["dilations"]),
                      dilations=list(a["strides"]), pads=pads) for x, dy in zip(xs, dys)]
    full = parts[0] if g == 1 else ctx.emit("Concat", parts, axis=1)          # (cin/g, cout, KH', KW')
    corner = ctx.emit("Slice", [full, ctx.ints([0, 0], "starts"), ctx.ints([kh, kw], "ends"), ctx.ints([2, 3], "axes")])
    ctx.emit("Transpose", [corner], out=outs[0], perm=[2, 3, 0, 1])


def _split_channels(ctx, t, channels, groups):
    if groups == 1:
        return [t]
    return ctx.emit("Split", [t, ctx.ints([channels // groups] * groups, "groups")], n_out=groups, axis=0)


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


@onnx_op("max_pool2d_grad")
def _max_pool2d_grad(ctx, node, ins, outs):
    """dy goes to the first maximum of each window (row-major), as in the reference; not MaxPool's
    Indices, which leave ties unspecified. Window offset k's share is placed by a depthwise
    transposed convolution whose kernel is one at k."""
    a = node.attrs
    x_t, out_hw = node.inputs[0].type, node.inputs[1].type.shape[1:3]
    pool, strides = list(a["pool_size"]), list(a["strides"])
    pads = _explicit_pads(x_t.shape[1:3], pool, strides, [1, 1], a["padding"])
    windows = _pool_windows(ctx, ins[0], x_t.dtype.np, pool, strides, pads, out_hw)
    shares = _first_max_shares(ctx, windows, ins[1], x_t.dtype.np)
    channels, k = x_t.shape[3], len(windows)
    stacked = ctx.emit("Concat", shares, axis=2) if k > 1 else shares[0]       # (N, C, K, OH, OW)
    grouped = ctx.emit("Reshape", [stacked, ctx.ints([0, channels * k, *out_hw], "shape")])
    one_at = np.zeros((channels, k, 1, k), x_t.dtype.np)
    one_at[:, np.arange(k), 0, np.arange(k)] = 1                               # kernel c*K+k is one at k
    kernels = ctx.const(one_at.reshape(channels * k, 1, *pool), "one_hot_kernels")
    dx = ctx.emit("ConvTranspose", [grouped, kernels], kernel_shape=pool, strides=strides, pads=pads,
                  group=channels, output_padding=_output_padding(x_t.shape[1:3], out_hw, pool, strides, [1, 1], pads))
    ctx.emit("Transpose", [dx], out=outs[0], perm=TO_CHANNELS_LAST[2])


def _pool_windows(ctx, x, dt, pool, strides, pads, out_hw) -> list:
    """For each window offset (i, j), row-major: the NHWC input values it sees, one per output."""
    nhwc_pads = [0, pads[0], pads[1], 0, 0, pads[2], pads[3], 0]
    xp = ctx.emit("Pad", [x, ctx.ints(nhwc_pads, "pads"), ctx.scalar(-np.inf, dt, "minus_inf")], mode="constant")
    steps, axes = ctx.ints(strides, "steps"), ctx.ints([1, 2], "axes")
    span = [(out_hw[0] - 1) * strides[0] + 1, (out_hw[1] - 1) * strides[1] + 1]
    return [ctx.emit("Slice", [xp, ctx.ints([i, j], "starts"), ctx.ints([i + span[0], j + span[1]], "ends"),
                               axes, steps])
            for i in range(pool[0]) for j in range(pool[1])]


def _first_max_shares(ctx, windows, dy, dt) -> list:
    """Per window offset: dy where that offset holds its window's first maximum, else 0 (N, C, 1, OH, OW)."""
    y = ctx.emit("Max", windows) if len(windows) > 1 else windows[0]
    shares, taken, zero = [], None, ctx.scalar(0, dt, "zero")
    for win in windows:
        hit = ctx.emit("Equal", [win, y])
        if taken is not None:
            hit = ctx.emit("And", [hit, ctx.emit("Not", [taken])])
        taken = hit if taken is None else ctx.emit("Or", [taken, hit])
        share = ctx.emit("Transpose", [ctx.emit("Where", [hit, dy, zero])], perm=TO_CHANNELS_FIRST[2])
        shares.append(ctx.emit("Unsqueeze", [share, ctx.ints([2], "axes")]))
    return shares
