"""3-D convolution and pooling (N, D, H, W, C), recorded as the 2-D ops over free reshapes.

conv3d: the depth taps become channels (KD strided depth slices, concatenated), and the depth blocks
are stacked along H, each padded to a multiple of the H stride, so that one conv2d (kernel
(kh, kw, kd*cin, cout)) computes every output depth at once; each block's first OH rows are kept.
With groups, the channels are reordered group-major so the conv2d's groups are the Conv3D's.
conv3d_transpose: the mirror image. One conv2d_transpose over (H, W) of every input depth at once
(depth blocks stacked along H, each with enough zero rows that its taps stay inside its own block),
with the depth taps as output channels (kernel (kh, kw, kd*cout, cin)); then each tap's result is
spread to depths i*stride + tap*dilation (zeros inserted between depths, shifted, summed), and every
axis is cut to Keras's output size and padding (ir/ops/conv_transpose.py's geometry).
pool3d: max and average are separable over a box (the "same" average divides by the product of the
per-axis counts of real inputs), so a 2-D pool over (D, H) with W*C as channels, then one over W.
Gradients, native code and ONNX come from the 2-D ops.
"""
from __future__ import annotations

from kcompile.ir import ShapeError
from kcompile.ir.ops.conv_transpose import conv_transpose_geometry
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


def conv3d(x, w, strides, padding, dilations, groups=1):
    n, d, h, wd, c = x.ir_shape
    kd, kh, kw, cin, cout = w.ir_shape   # cin: channels per group
    (od, d0, d1), (oh, h0, h1), (ow, w0, w1) = _geometry3d("conv3d", (d, h, wd), (kd, kh, kw), strides, dilations,
                                                           padding)
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    block = h + h0 + h1 + (-(h + h0 + h1)) % sh     # one depth block's rows, a multiple of the H stride
    x = apply("pad", x, pads=(0, 0, d0, d1, h0, block - h - h0, w0, w1, 0, 0))
    taps = [apply("slice", x, axes=[1], starts=[t * dd], ends=[t * dd + (od - 1) * sd + 1], steps=[sd])
            for t in range(kd)]
    x = ops.concatenate(taps, axis=-1) if kd > 1 else taps[0]               # (N, OD, block, W', kd*C)
    if groups > 1 and kd > 1:   # channels (tap, group, c) -> (group, tap, c): each group's channels contiguous
        x = ops.reshape(x, (n, od, block, wd + w0 + w1, kd, groups, cin))
        x = ops.reshape(ops.transpose(x, (0, 1, 2, 3, 5, 4, 6)), (n, od, block, wd + w0 + w1, kd * c))
    x = ops.reshape(x, (n, od * block, wd + w0 + w1, kd * c))
    tail = max((kh - 1) * dh + 1 - sh, 0)                                     # so the last block gets its rows
    if tail:
        x = apply("pad", x, pads=(0, 0, 0, tail, 0, 0, 0, 0))
    w2 = ops.reshape(ops.transpose(w, (1, 2, 0, 3, 4)), (kh, kw, kd * cin, cout))
    y = apply("conv2d", x, w2, strides=(sh, sw), padding="valid", dilations=(dh, dw), groups=groups)
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


def conv3d_transpose(x, w, strides, padding, dilations, output_padding=None):
    """Keras's Conv3DTranspose (NDHWC, kernel (kd, kh, kw, out, in)) over one conv2d_transpose."""
    n, d, h, wd, c = x.ir_shape
    kd, kh, kw, cout, cin = w.ir_shape
    (sd, sh, sw), (dd, dh, dw) = strides, dilations
    out_pad = output_padding or (None, None, None)
    geo = [conv_transpose_geometry(*a, padding, o) for a, o in
           zip(zip((d, h, wd), (kd, kh, kw), strides, dilations), out_pad)]
    if any(size <= 0 for size, _ in geo):
        raise ShapeError(f"conv3d_transpose: input {x.ir_type} with kernel {w.ir_type} gives an empty output")
    eff_h = (kh - 1) * dh + 1
    block = h + max(0, -(-eff_h // sh) - 1)          # rows per depth block: its taps stay inside it
    x = apply("pad", x, pads=(0, 0, 0, 0, 0, block - h, 0, 0, 0, 0))
    w2 = ops.reshape(ops.transpose(w, (1, 2, 0, 3, 4)), (kh, kw, kd * cout, cin))
    y = apply("conv2d_transpose", ops.reshape(x, (n, d * block, wd, c)), w2, strides=(sh, sw), padding="valid",
              dilations=(dh, dw), output_padding=(0, 0))
    y = _window(y, 1, 0, d * block * sh)
    wf = y.ir_shape[2]
    y = ops.reshape(y, (n, d, 1, block * sh, wf, kd, cout))
    y = apply("pad", y, pads=(0, 0, 0, 0, 0, sd - 1, 0, 0, 0, 0, 0, 0, 0, 0))   # zeros between input depths
    y = ops.reshape(y, (n, d * sd, block * sh, wf, kd, cout))
    full = d * sd + (kd - 1) * dd
    taps = ops.split(y, kd, axis=4) if kd > 1 else [y]
    total = None
    for t, tap in enumerate(taps):
        shifted = apply("pad", ops.squeeze(tap, 4), pads=(0, 0, t * dd, full - d * sd - t * dd, 0, 0, 0, 0, 0, 0))
        total = shifted if total is None else ops.add(total, shifted)
    for axis, (size, before) in zip((1, 2, 3), geo):
        total = _window(total, axis, before, size)
    return total


def _window(x, axis: int, start: int, size: int):
    """x[start:start+size] along a static axis, zeros past its end."""
    have = x.ir_shape[axis]
    if start + size > have:
        pads = [0] * (2 * x.ndim)
        pads[2 * axis + 1] = start + size - have
        x = apply("pad", x, pads=tuple(pads))
    if start == 0 and size == x.ir_shape[axis]:
        return x
    return apply("slice", x, axes=[axis], starts=[start], ends=[start + size])
