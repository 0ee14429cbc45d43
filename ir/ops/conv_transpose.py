"""conv2d_transpose: the Keras transposed convolution (NHWC, kernel (kh, kw, out, in)).

y[n, i*s + t*d - before, o] += x[n, i, c] * w[t, o, c] along each spatial axis: the adjoint of a
conv2d whose kernel is w, so the same kernel layout serves both. The output size and the padding
`before` follow Keras's jax backend (keras/src/backend/common/backend_utils.py): "valid" keeps every
tap, "same" gives in * stride, and an explicit output_padding adds rows at the end.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import float_only, require, same_dtype
from .nn import PADDINGS

CONV_TRANSPOSE_ATTRS = {
    "strides": Attr("ints", (1, 1)),
    "padding": Attr("str", "valid", PADDINGS),
    "dilations": Attr("ints", (1, 1)),
    "output_padding": Attr("ints", ()),   # () = Keras's None (a default from padding and stride)
}


def conv_transpose_geometry(size: int, k: int, stride: int, dilation: int, padding: str, output_padding=None):
    """(output size, padding before) of a transposed convolution along one spatial axis."""
    eff = (k - 1) * dilation + 1
    if padding == "valid":
        extra = max(eff, stride) - eff if output_padding is None else output_padding
        left, right = eff - 1, eff - 1 + extra
    else:
        pad_len = stride + eff - 2 if output_padding is None else eff + eff % 2 - 2 + output_padding
        left = min(pad_len // 2 + pad_len % 2, eff - 1)
        right = pad_len - left
    return (size - 1) * stride + left + right - eff + 2, eff - 1 - left


def transpose_geometries(x_shape, k_shape, attrs):
    """Per spatial axis: (output size, padding before)."""
    ops = attrs["output_padding"] or (None,) * len(k_shape)
    return [conv_transpose_geometry(size, k, s, d, attrs["padding"], o)
            for size, k, s, d, o in zip(x_shape[1:-1], k_shape, attrs["strides"], attrs["dilations"], ops)]


def _infer(ts, attrs):
    x, w = ts
    same_dtype(ts)
    float_only(x, "conv2d_transpose")
    strides, dilations, out_pad = attrs["strides"], attrs["dilations"], attrs["output_padding"]
    require(len(strides) == 2 and len(dilations) == 2 and len(out_pad) in (0, 2),
            f"conv2d_transpose: strides {list(strides)}, dilations {list(dilations)} need 2 values and "
            f"output_padding {list(out_pad)} 0 or 2")
    require(all(s > 0 for s in strides) and all(d > 0 for d in dilations), "strides and dilations must be positive")
    require(all(0 <= o < s for o, s in zip(out_pad, strides)),
            f"conv2d_transpose: output_padding {list(out_pad)} must be at least 0 and less than strides {list(strides)}")
    require(x.rank == 4, f"conv2d_transpose input must be NHWC (rank 4), got {x}")
    require(w.rank == 4, f"conv2d_transpose kernel must be (kh, kw, out, in), got {w}")
    require(x.shape[3] == w.shape[3], f"conv2d_transpose channels: input {x} has {x.shape[3]} channels, kernel {w} "
                                      f"expects {w.shape[3]}")
    geo = transpose_geometries(x.shape, w.shape[:2], attrs)
    require(all(size > 0 for size, _ in geo), f"conv2d_transpose: {x} with kernel {w} gives an empty output")
    return [TensorType((x.shape[0], *(size for size, _ in geo), w.shape[2]), x.dtype)]


def conv2d_transpose_ref(x, w, attrs):
    """Scatter x @ w[tap]^T to each tap's strided rows, into a buffer long enough for every tap."""
    geo = transpose_geometries(x.shape, w.shape[:2], attrs)
    spatial = x.shape[1:-1]
    reach = [(n - 1) * s + (k - 1) * d + 1 for n, k, s, d in zip(spatial, w.shape[:2], attrs["strides"],
                                                                   attrs["dilations"])]
    full = np.zeros((x.shape[0], *(max(r, before + size) for r, (size, before) in zip(reach, geo)), w.shape[2]),
                    x.dtype)
    for tap in itertools.product(*(range(k) for k in w.shape[:2])):
        window = tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                       for t, n, s, d in zip(tap, spatial, attrs["strides"], attrs["dilations"]))
        full[(slice(None), *window)] += x @ w[tap].T
    crop = tuple(slice(before, before + size) for size, before in geo)
    return np.ascontiguousarray(full[(slice(None), *crop)])


defop("conv2d_transpose", ("x", "w"), _infer, lambda xs, a, b: [conv2d_transpose_ref(xs[0], xs[1], a)],
      attrs=CONV_TRANSPOSE_ATTRS, doc="Keras transposed convolution (NHWC) with kernel (kh, kw, out, in)",
      traits=("anchor",))
