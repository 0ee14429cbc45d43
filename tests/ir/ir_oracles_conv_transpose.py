"""Oracle of conv2d_transpose written the way Keras's jax backend computes it: dilate x by the
stride (stride - 1 zeros between rows), pad (left, right) from Keras's padding rule, then a plain
"valid" correlation with the spatially flipped kernel, loops over every output element."""
from __future__ import annotations

import itertools

import numpy as np


def _keras_pads(k, stride, dilation, padding, output_padding):
    eff = (k - 1) * dilation + 1
    if padding == "valid":
        extra = max(eff, stride) - eff if output_padding is None else output_padding
        return eff - 1, eff - 1 + extra
    total = stride + eff - 2 if output_padding is None else eff + eff % 2 - 2 + output_padding
    left = min((total + 1) // 2, eff - 1)
    return left, total - left


def conv2d_transpose(xs, attrs):
    x, w = (np.asarray(a, np.float64) for a in xs)
    strides, dilations = attrs.get("strides", (1, 1)), attrs.get("dilations", (1, 1))
    ops = attrs.get("output_padding") or (None, None)
    n, h, wd, cin = x.shape
    kh, kw, cout, _ = w.shape
    dil = np.zeros((n, (h - 1) * strides[0] + 1, (wd - 1) * strides[1] + 1, cin))
    dil[:, ::strides[0], ::strides[1]] = x
    pads = [_keras_pads(k, s, d, attrs.get("padding", "valid"), o)
            for k, s, d, o in zip((kh, kw), strides, dilations, ops)]
    xp = np.zeros((n, dil.shape[1] + sum(pads[0]), dil.shape[2] + sum(pads[1]), cin))
    xp[:, pads[0][0]:pads[0][0] + dil.shape[1], pads[1][0]:pads[1][0] + dil.shape[2]] = dil
    flipped = w[::-1, ::-1]
    oh, ow = xp.shape[1] - (kh - 1) * dilations[0], xp.shape[2] - (kw - 1) * dilations[1]
    y = np.zeros((n, oh, ow, cout))
    for i, j, a, b in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        y[:, i, j] += xp[:, i + a * dilations[0], j + b * dilations[1]] @ flipped[a, b].T
    return [y.astype(xs[0].dtype)]
