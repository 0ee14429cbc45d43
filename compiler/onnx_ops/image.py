"""resize -> ONNX Resize on the H and W axes; affine_transform -> GridSample on NCHW.

Resize: bilinear is `linear` with half_pixel coordinates (no antialiasing), nearest is half_pixel +
round_prefer_ceil, i.e. floor((i + 0.5) * in / out): JAX's rules.
GridSample samples at normalized coordinates; the source points are computed with ONNX ops as the
reference computes them, then normalized. The fill modes map as: constant -> zeros padding on
x - fill_value (plus fill_value after: the bilinear weights sum to 1), nearest -> border,
reflect -> reflection with align_corners=0 (reflects about the outer pixel edges), mirror ->
reflection with align_corners=1 (about the edge pixel centres). GridSample has no wrap mode, so
fill_mode="wrap" is not exportable. For nearest, the source points are rounded (ties away from zero,
as the op) before GridSample, whose own rounding sends ties to even, sees them.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from . import onnx_op
from .context import UnsupportedOpError

GRID_PADDING = {"constant": "zeros", "nearest": "border", "reflect": "reflection", "mirror": "reflection"}


@onnx_op("resize")
def _resize(ctx, node, ins, outs):
    nearest = node.attrs["interpolation"] == "nearest"
    ctx.emit("Resize", [ins[0], "", "", ctx.ints(node.attrs["size"], "sizes")], out=outs[0], axes=[1, 2],
             mode="nearest" if nearest else "linear",
             coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")


@onnx_op("affine_transform")
def _affine_transform(ctx, node, ins, outs):
    x, t = node.inputs
    mode, (_, h, w, _) = node.attrs["fill_mode"], x.shape
    if mode == "wrap":
        raise UnsupportedOpError(f"{node.where()}: affine_transform with fill_mode='wrap' cannot be exported to "
                                 "ONNX (GridSample has no wrap padding); use fill_mode 'reflect', 'mirror', "
                                 "'nearest' or 'constant'")
    dt = x.type.dtype.np
    nearest = node.attrs["interpolation"] == "nearest"
    grid = _grid(ctx, ins[0], ins[1], h, w, dt, align_corners=mode == "mirror", round_first=nearest)
    image = ctx.emit("Transpose", [ins[0]], perm=[0, 3, 1, 2])
    fill = ctx.scalar(node.attrs["fill_value"], dt, "fill") if mode == "constant" else None
    shifted = ctx.emit("Sub", [image, fill]) if fill else image
    nearest = node.attrs["interpolation"] == "nearest"
    linear = "linear" if ctx.opset >= 20 else "bilinear"
    sampled = ctx.emit("GridSample", [shifted, grid], mode="nearest" if nearest else linear,
                       padding_mode=GRID_PADDING[mode], align_corners=int(mode == "mirror"))
    if fill:
        sampled = ctx.emit("Add", [sampled, fill])
    ctx.emit("Transpose", [sampled], out=outs[0], perm=[0, 2, 3, 1])


def _grid(ctx, image, transform, h: int, w: int, dt, align_corners: bool, round_first: bool) -> str:
    """(N, H, W, 2) normalized (x, y) sampling points, as ir/ops/image.py's source_points."""
    ys, xs = np.meshgrid(np.arange(h, dtype=dt), np.arange(w, dtype=dt), indexing="ij")
    xs, ys = ctx.const(xs, "cols"), ctx.const(ys, "rows")
    rows = ctx.emit("Reshape", [transform, ctx.ints([-1, 8, 1, 1], "transform_shape")])
    a0, a1, a2, b0, b1, b2, c0, c1 = ctx.emit("Split", [rows, ctx.ints([1] * 8, "eight")], axis=1, n_out=8)
    sq = [ctx.emit("Squeeze", [p, ctx.ints([1], "axis1")]) for p in (a0, a1, a2, b0, b1, b2, c0, c1)]
    a0, a1, a2, b0, b1, b2, c0, c1 = sq

    def lin(p, q, r):   # (p * x + q * y) + r, in the reference's order
        return ctx.emit("Add", [ctx.emit("Add", [ctx.emit("Mul", [p, xs]), ctx.emit("Mul", [q, ys])]), r])
    k = lin(c0, c1, ctx.scalar(1.0, dt, "one"))
    lim = 2.0 ** 24
    coords = []
    for num, size in ((lin(a0, a1, a2), w), (lin(b0, b1, b2), h)):
        p = ctx.emit("Clip", [ctx.emit("Div", [num, k]), ctx.scalar(-lim, dt, "lo"), ctx.scalar(lim, dt, "hi")])
        if round_first:
            p = _round_half_away(ctx, p, dt)
        if align_corners:   # pixel p -> 2 p / (size - 1) - 1; a size-1 axis mirrors onto pixel 0 (-1)
            g = ctx.emit("Mul", [p, ctx.scalar(2.0 / (size - 1) if size > 1 else 0.0, dt, "scale")])
        else:               # pixel p -> (2 p + 1) / size - 1
            g = ctx.emit("Mul", [ctx.emit("Add", [ctx.emit("Mul", [p, ctx.scalar(2.0, dt, "two")]),
                                                  ctx.scalar(1.0, dt, "one")]), ctx.scalar(1.0 / size, dt, "inv")])
        coords.append(ctx.emit("Unsqueeze", [ctx.emit("Sub", [g, ctx.scalar(1.0, dt, "one")]),
                                             ctx.ints([-1], "last")]))
    grid = ctx.emit("Concat", coords, axis=-1)
    batch = ctx.emit("Shape", [image], start=0, end=1)
    return ctx.emit("Expand", [grid, ctx.emit("Concat", [batch, ctx.ints([h, w, 2], "hw2")], axis=0)])


def _round_half_away(ctx, p: str, dt) -> str:
    """sign(p) * (floor(|p|) + (|p| - floor(|p|) >= 0.5)): exact in floating point, unlike floor(p + 0.5)."""
    mag = ctx.emit("Abs", [p])
    whole = ctx.emit("Floor", [mag])
    up = ctx.emit("Cast", [ctx.emit("GreaterOrEqual", [ctx.emit("Sub", [mag, whole]), ctx.scalar(0.5, dt, "half")])],
                  to=helper.np_dtype_to_tensor_dtype(np.dtype(dt)))
    return ctx.emit("Mul", [ctx.emit("Sign", [p]), ctx.emit("Add", [whole, up])])
