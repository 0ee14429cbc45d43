"""Image ops on NHWC batches: resize (Keras/JAX half-pixel resampling) and affine_transform (a
projective warp with Keras's interpolations and fill modes).

resize(x) {size, interpolation}: jax.image.resize with antialias=False, which Keras's Resizing uses.
"bilinear" samples input row (i + 0.5) * in / out - 0.5 with the triangle kernel, renormalized at the
edges (so the edge pixel repeats); "nearest" takes input row floor((i + 0.5) * in / out). Both are
separable: y = Wh · x · Wwᵀ per channel, with Wh, Ww the static (out, in) matrices of resize_weights.

affine_transform(x, transform) {interpolation, fill_mode, fill_value}: transform is (8,) or (N, 8)
[a0, a1, a2, b0, b1, b2, c0, c1]; output pixel (row y, column x) reads input point
    k = c0 * x + c1 * y + 1,   x_in = (a0 * x + a1 * y + a2) / k,   y_in = (b0 * x + b1 * y + b2) / k
(keras.ops.image.affine_transform; Keras's JAX backend ignores c0 and c1, its layers set them to 0).
Interpolation and fill modes follow jax.scipy.ndimage.map_coordinates (order 0/1), which Keras calls:
bilinear weights the 4 neighbours floor(p), floor(p) + 1; nearest rounds half away from zero; each
integer index is then fixed by the fill mode (constant: fill_value outside; nearest: clamp; wrap:
modulo; mirror: reflect about the edge pixels; reflect: reflect about the edges, repeating them).
Every step is spelled out in float32 in the order the native lowering uses, so the two agree bit
for bit. Coordinates are clamped to +-2**24 first (NaN to the low end), so indices stay defined.
"""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import float_only, require

INTERPOLATIONS = ("bilinear", "nearest")
FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")
COORD_LIMIT = np.float32(2.0 ** 24)


# -- resize ------------------------------------------------------------------------------
def resize_weights(size_in: int, size_out: int, interpolation: str) -> np.ndarray:
    """The (size_out, size_in) float32 resampling matrix of one axis (jax.image's compute_weight_mat)."""
    f32 = np.float32
    out = np.arange(size_out, dtype=f32)
    if interpolation == "nearest":
        src = np.floor((out + f32(0.5)) * f32(size_in) / f32(size_out)).astype(np.int64)
        w = np.zeros((size_out, size_in), f32)
        w[np.arange(size_out), np.minimum(src, size_in - 1)] = 1
        return w
    inv_scale = f32(1.0) / (f32(size_out) / f32(size_in))
    sample = (out + f32(0.5)) * inv_scale - f32(0.5)
    w = np.maximum(f32(0), f32(1) - np.abs(sample[:, None] - np.arange(size_in, dtype=f32)[None, :]))
    total = w.sum(axis=1, keepdims=True)
    w = np.where(np.abs(total) > 1000 * np.finfo(f32).eps, w / np.where(total == 0, 1, total), 0).astype(f32)
    inside = (sample >= -0.5) & (sample <= size_in - 0.5)
    return np.where(inside[:, None], w, 0).astype(f32)


def _resize_infer(ts, attrs):
    x = ts[0]
    float_only(x, "resize")
    require(x.rank == 4, f"resize needs an NHWC image batch (rank 4), got {x}")
    require(len(attrs["size"]) == 2 and all(s > 0 for s in attrs["size"]),
            f"resize size must be two positive ints (height, width), got {list(attrs['size'])}")
    require(all(isinstance(d, int) for d in x.shape[1:3]), f"resize needs a static height and width, got {x}")
    return [TensorType((x.shape[0], *attrs["size"], x.shape[3]), x.dtype)]


def _resize_ref(xs, attrs, batch):
    x = xs[0]
    wh = resize_weights(x.shape[1], attrs["size"][0], attrs["interpolation"]).astype(x.dtype)
    ww = resize_weights(x.shape[2], attrs["size"][1], attrs["interpolation"]).astype(x.dtype)
    return [np.einsum("oh,nhwc,pw->nopc", wh, x, ww).astype(x.dtype)]


defop("resize", ("x",), _resize_infer, _resize_ref,
      attrs={"size": Attr("ints"), "interpolation": Attr("str", "bilinear", INTERPOLATIONS)},
      doc="NHWC image resize to size=(h, w), Keras/JAX half-pixel bilinear or nearest, no antialiasing")


# -- affine_transform --------------------------------------------------------------------
def _affine_infer(ts, attrs):
    x, t = ts
    float_only(x, "affine_transform")
    require(x.rank == 4, f"affine_transform needs an NHWC image batch (rank 4), got {x}")
    require(t.dtype == x.dtype, f"affine_transform: transform {t} must have the image's dtype {x.dtype}")
    require((t.rank == 1 and t.shape == (8,)) or (t.rank == 2 and t.shape[1] == 8 and t.shape[0] in (x.shape[0], 1)),
            f"affine_transform: transform must be (8,) or (batch, 8) for images {x}, got {t}")
    return [x]


def fix_index(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """map_coordinates' index fixers on int64 indices (constant: left as is, checked by the caller)."""
    if mode == "nearest":
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    if mode == "mirror":
        return np.zeros_like(i) if n == 1 else np.abs(np.mod(i + (n - 1), 2 * (n - 1)) - (n - 1))
    if mode == "reflect":
        return (np.abs(np.mod(2 * i + 1 + 2 * n, 4 * n) - 2 * n) - 1) // 2
    return i


def round_half_away(v: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero, exactly (LLVM's llvm.round)."""
    t = np.trunc(v)
    return t + np.where(np.abs(v - t) >= 0.5, np.sign(v), 0).astype(v.dtype)


def source_points(t: np.ndarray, h: int, w: int):
    """(y_in, x_in) float arrays (batch, h, w) for transforms t (batch, 8), clamped to +-2**24."""
    dt = t.dtype.type
    ys, xs = np.meshgrid(np.arange(h, dtype=t.dtype), np.arange(w, dtype=t.dtype), indexing="ij")
    a0, a1, a2, b0, b1, b2, c0, c1 = (t[:, i, None, None] for i in range(8))
    k = c0 * xs + c1 * ys + dt(1)
    with np.errstate(divide="ignore", invalid="ignore"):   # k = 0 and NaN are clamped below
        x_in = (a0 * xs + a1 * ys + a2) / k
        y_in = (b0 * xs + b1 * ys + b2) / k
    lim = dt(COORD_LIMIT)
    return tuple(np.fmin(np.fmax(v, -lim), lim) for v in (y_in, x_in))   # fmax/fmin: NaN -> the bound


def _taps(p: np.ndarray, n: int, attrs):
    """[(index, valid, weight)] per interpolation tap along one axis."""
    if attrs["interpolation"] == "nearest":
        taps = [(round_half_away(p).astype(np.int64), np.ones_like(p))]
    else:
        lo = np.floor(p)
        upper = p - lo
        taps = [(lo.astype(np.int64), p.dtype.type(1) - upper), (lo.astype(np.int64) + 1, upper)]
    mode = attrs["fill_mode"]
    return [(fix_index(i, n, mode), (i >= 0) & (i < n) if mode == "constant" else None, wt) for i, wt in taps]


def _affine_ref(xs, attrs, batch):
    x, t = xs
    nb, h, w, _ = x.shape
    t = np.broadcast_to(t.reshape(-1, 8), (nb, 8))
    y_in, x_in = source_points(t, h, w)
    fill = x.dtype.type(attrs["fill_value"])
    out = None
    for ri, rv, rw in _taps(y_in, h, attrs):
        for ci, cv, cw in _taps(x_in, w, attrs):
            vals = x[np.arange(nb)[:, None, None], np.clip(ri, 0, h - 1), np.clip(ci, 0, w - 1)]
            if rv is not None:
                vals = np.where((rv & cv)[..., None], vals, fill)
            term = (rw * cw)[..., None] * vals
            out = term if out is None else out + term
    return [out.astype(x.dtype)]


defop("affine_transform", ("x", "transform"), _affine_infer, _affine_ref,
      attrs={"interpolation": Attr("str", "bilinear", INTERPOLATIONS),
             "fill_mode": Attr("str", "constant", FILL_MODES), "fill_value": Attr("float", 0.0)},
      differentiable=False,
      doc="projective warp of NHWC images by 8-parameter transforms (keras.ops.image.affine_transform)")
