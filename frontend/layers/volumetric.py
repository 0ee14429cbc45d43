"""3-D convolution and pooling (N, D, H, W, C), recorded as the 2-D ops over free reshapes.

conv3d: the depth taps become channels (KD strided depth slices, concatenated), and the depth blocks
are stacked along H, each padded to a multiple of the H stride, so that one conv2d (kernel
(kh, kw, kd*cin, cout)) computes every output depth at once; each block's first OH rows are kept.
pool3d: max and average are separable over a box (the "same" average divides by the product of the
per-axis counts of real inputs), so a 2-D pool over (D, H) with W*C as channels, then one over W.
Gradients, native code and ONNX come from the 2-D ops.
"""
from __future__ import annotations

from kcompile.ir import ShapeError
from kcompile.ir.ops.nn import conv_geometry

from .. import ops
from ..tensor import apply


def _geometry3d(what, spatial, window, strides, dilations, padding):
    """conv_geometry per axis, with one error naming every size when a window does not fit."""
    geo = [conv_geometry(*g, padding) for g in zip(spatial, window, strides, dilations)]
    if any(out <= 0 for out, _, _ in geo):
        raise ShapeError(f"{what}: input spatial size {tuple(spatial)} is too small for window {tuple(window)} "
                         f"(dilation {tuple(dilations)}) with padding '{padding}'")
    return geo


def conv3d(x, w, strides, padding, dilations):
    n, d, h, wd, c = x.ir_shape
    kd, kh, kw, cin, cout = w.ir_shape
    (od, d0, d1), (oh, h0, h1), (ow, w0, w1) = _geometry3d("conv3d", (d, h, wd), (kd, kh, kw), strides, dilations,
                                                           padding)
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    block = h + h0 + h1 + (-(h + h0 + h1)) % sh     # one depth block's rows, a multiple of the H stride
    x = apply("pad", x, pads=(0, 0, d0, d1, h0, block - h - h0, w0, w1, 0, 0))
    taps = [apply("slice", x, axes=[1], starts=[t * dd], ends=[t * dd + (od - 1) * sd + 1], steps=[sd])
            for t in range(kd)]
    x = ops.concatenate(taps, axis=-1) if kd > 1 else taps[0]               # (N, OD, block, W', kd*C)
    x = ops.reshape(x, (n, od * block, wd + w0 + w1, kd * cin))
    tail = max((kh - 1) * dh + 1 - sh, 0)                                     # so the last block gets its rows
    if tail:
        x = apply("pad", x, pads=(0, 0, 0, tail, 0, 0, 0, 0))
    w2 = ops.reshape(ops.transpose(w, (1, 2, 0, 3, 4)), (kh, kw, kd * cin, cout))
    y = apply("conv2d", x, w2, strides=(sh, sw), padding="valid", dilations=(dh, dw))
    y = ops.reshape(y, (n, od, block // sh, ow, cout))
    return apply("slice", y, axes=[2], starts=[0], ends=[oh]) if block // sh != oh else y


def pool3d(kind, x, pool_size, strides, padding):
    n, d, h, w, c = x.ir_shape
    _geometry3d(f"{kind}_pool3d", (d, h, w), pool_size, strides, (1, 1, 1), padding)
    (pd, ph, pw), (sd, sh, sw) = pool_size, strides
    y = apply(f"{kind}_pool2d", ops.reshape(x, (n, d, h, w * c)), pool_size=(pd, ph), strides=(sd, sh),
              padding=padding)
    _, od, oh, _ = y.ir_shape
    y = apply(f"{kind}_pool2d", ops.reshape(y, (n, od * oh, w, c)), pool_size=(1, pw), strides=(1, sw),
              padding=padding)
    return ops.reshape(y, (n, od, oh, y.ir_shape[2], c))
