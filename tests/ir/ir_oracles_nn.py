"""Naive loop formulations of the NN ops (Keras padding rules written out from the Keras docs).

"valid": out = floor((in - eff) / stride) + 1 with eff = (k - 1) * dilation + 1.
"same": out = ceil(in / stride); total padding max((out - 1) * stride + eff - in, 0), the smaller
half before. "causal" (conv1d): (k - 1) * dilation zeros before, then "valid".
"""
from __future__ import annotations

import itertools
import math

import numpy as np

MASK32 = 0xFFFFFFFF


def geometry(size, k, stride, dilation, padding):
    """(output size, padding before) along one spatial axis."""
    eff = (k - 1) * dilation + 1
    if padding == "valid":
        return (size - eff) // stride + 1, 0
    if padding == "causal":
        return (size + eff - 1 - eff) // stride + 1, eff - 1
    out = -(-size // stride)
    return out, max((out - 1) * stride + eff - size, 0) // 2


def _taps(in_hw, k_hw, strides, dilations, padding):
    """For each output (oh, ow): list of (kh, kw, ih, iw) taps that land inside the input."""
    (oh_n, pt), (ow_n, pl) = (geometry(in_hw[d], k_hw[d], strides[d], dilations[d], padding) for d in (0, 1))
    taps = {}
    for oh, ow in itertools.product(range(oh_n), range(ow_n)):
        taps[oh, ow] = [(kh, kw, ih, iw) for kh, kw in itertools.product(range(k_hw[0]), range(k_hw[1]))
                        for ih, iw in [(oh * strides[0] + kh * dilations[0] - pt, ow * strides[1] + kw * dilations[1] - pl)]
                        if 0 <= ih < in_hw[0] and 0 <= iw < in_hw[1]]
    return (oh_n, ow_n), taps


def _conv2d_loops(x_shape, w_shape, attrs):
    """Yield (n, oh, ow, co, kh, kw, ci_local, ih, iw, ci) for every multiply of a conv2d."""
    g = attrs.get("groups", 1)
    cg, co_n = w_shape[2], w_shape[3]
    _, taps = _taps(x_shape[1:3], w_shape[:2], attrs.get("strides", (1, 1)), attrs.get("dilations", (1, 1)),
                    attrs.get("padding", "valid"))
    for n, ((oh, ow), tl), co in itertools.product(range(x_shape[0]), taps.items(), range(co_n)):
        group = co // (co_n // g)
        for (kh, kw, ih, iw), c in itertools.product(tl, range(cg)):
            yield n, oh, ow, co, kh, kw, c, ih, iw, group * cg + c


def _conv2d_out_shape(x_shape, w_shape, attrs):
    (oh, ow), _ = _taps(x_shape[1:3], w_shape[:2], attrs.get("strides", (1, 1)),
                        attrs.get("dilations", (1, 1)), attrs.get("padding", "valid"))
    return (x_shape[0], oh, ow, w_shape[3])


def conv2d(xs, attrs):
    x, w = xs
    y = np.zeros(_conv2d_out_shape(x.shape, w.shape, attrs), np.float64)
    for n, oh, ow, co, kh, kw, c, ih, iw, ci in _conv2d_loops(x.shape, w.shape, attrs):
        y[n, oh, ow, co] += x[n, ih, iw, ci] * w[kh, kw, c, co]
    return [y.astype(x.dtype)]


def conv2d_input_grad(xs, attrs):
    dy, w = xs
    shape = tuple(dy.shape[0] if d == "N" else d for d in attrs["input_shape"])
    dx = np.zeros(shape, np.float64)
    for n, oh, ow, co, kh, kw, c, ih, iw, ci in _conv2d_loops(shape, w.shape, attrs):
        dx[n, ih, iw, ci] += dy[n, oh, ow, co] * w[kh, kw, c, co]
    return [dx.astype(dy.dtype)]


def conv2d_filter_grad(xs, attrs):
    x, dy = xs
    dw = np.zeros(attrs["filter_shape"], np.float64)
    for n, oh, ow, co, kh, kw, c, ih, iw, ci in _conv2d_loops(x.shape, attrs["filter_shape"], attrs):
        dw[kh, kw, c, co] += x[n, ih, iw, ci] * dy[n, oh, ow, co]
    return [dw.astype(x.dtype)]


def conv1d(xs, attrs):
    x, w = xs
    k, d, s = w.shape[0], attrs.get("dilations", 1), attrs.get("strides", 1)
    out_n, before = geometry(x.shape[1], k, s, d, attrs.get("padding", "valid"))
    g, cg, co_n = attrs.get("groups", 1), w.shape[1], w.shape[2]
    y = np.zeros((x.shape[0], out_n, co_n), np.float64)
    for n, o, co, t, c in itertools.product(range(x.shape[0]), range(out_n), range(co_n), range(k), range(cg)):
        i = o * s + t * d - before
        if 0 <= i < x.shape[1]:
            y[n, o, co] += x[n, i, co // (co_n // g) * cg + c] * w[t, c, co]
    return [y.astype(x.dtype)]


# -- pooling -----------------------------------------------------------------------------
def _pool_taps(shape, attrs):
    return _taps(shape[1:3], attrs["pool_size"], attrs["strides"], (1, 1), attrs.get("padding", "valid"))


def max_pool2d(xs, attrs):
    x = xs[0]
    (oh_n, ow_n), taps = _pool_taps(x.shape, attrs)
    y = np.empty((x.shape[0], oh_n, ow_n, x.shape[3]), x.dtype)
    for n, (o, tl), c in itertools.product(range(x.shape[0]), taps.items(), range(x.shape[3])):
        y[(n,) + o + (c,)] = max(x[n, ih, iw, c] for _, _, ih, iw in tl)  # padding never wins
    return [y]


def avg_pool2d(xs, attrs):
    x = xs[0]
    (oh_n, ow_n), taps = _pool_taps(x.shape, attrs)
    y = np.empty((x.shape[0], oh_n, ow_n, x.shape[3]), x.dtype)
    for n, (o, tl), c in itertools.product(range(x.shape[0]), taps.items(), range(x.shape[3])):
        y[(n,) + o + (c,)] = math.fsum(float(x[n, ih, iw, c]) for _, _, ih, iw in tl) / len(tl)
    return [y]


def max_pool2d_grad(xs, attrs):
    x, dy = xs
    _, taps = _pool_taps(x.shape, attrs)
    dx = np.zeros(x.shape, np.float64)
    for n, (o, tl), c in itertools.product(range(x.shape[0]), taps.items(), range(x.shape[3])):
        vals = [x[n, ih, iw, c] for _, _, ih, iw in tl]
        _, _, ih, iw = tl[vals.index(max(vals))]  # the first maximum in row-major window order
        dx[n, ih, iw, c] += dy[(n,) + o + (c,)]
    return [dx.astype(x.dtype)]


def avg_pool2d_grad(xs, attrs):
    dy = xs[0]
    shape = tuple(dy.shape[0] if d == "N" else d for d in attrs["input_shape"])
    _, taps = _pool_taps(shape, attrs)
    dx = np.zeros(shape, np.float64)
    for n, (o, tl), c in itertools.product(range(shape[0]), taps.items(), range(shape[3])):
        for _, _, ih, iw in tl:
            dx[n, ih, iw, c] += dy[(n,) + o + (c,)] / len(tl)
    return [dx.astype(dy.dtype)]


def pool1d(pool2d):
    def oracle(xs, attrs):
        a2 = {**attrs, "pool_size": (1, *attrs["pool_size"]), "strides": (1, *attrs["strides"])}
        return [pool2d([xs[0][:, None]], a2)[0][:, 0]]
    return oracle


# -- softmax -----------------------------------------------------------------------------
def _along_axis(fn, x, axis):
    x = np.moveaxis(x, axis, -1)
    out = np.empty(x.shape, np.float64)
    for idx in np.ndindex(*x.shape[:-1]):
        out[idx] = fn([float(v) for v in x[idx]])
    return np.moveaxis(out, -1, axis)


def _softmax_row(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / math.fsum(e) for v in e]


def _log_softmax_row(row):
    m = max(row)
    lse = m + math.log(math.fsum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def softmax(xs, attrs):
    return [_along_axis(_softmax_row, xs[0], attrs.get("axis", -1)).astype(xs[0].dtype)]


def log_softmax(xs, attrs):
    return [_along_axis(_log_softmax_row, xs[0], attrs.get("axis", -1)).astype(xs[0].dtype)]


# -- the counter-based random op, from the formula in its docstring ------------------------
def _fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    return h ^ (h >> 16)


def uniform(seed: int, counter: int, n: int) -> list:
    c = counter & 0xFFFFFFFFFFFFFFFF
    lo, hi = c & MASK32, c >> 32
    s = _fmix32((seed * 0x9E3779B9 + lo) & MASK32)
    s = _fmix32(s ^ ((hi * 0x85EBCA6B) & MASK32))
    return [(_fmix32(s ^ ((i * 0xCC9E2D51) & MASK32)) >> 8) * 2.0 ** -24 for i in range(n)]


def random_uniform_like(xs, attrs):
    x, counter = xs
    return [np.array(uniform(attrs.get("seed", 0), int(counter), x.size), np.float32).reshape(x.shape)]
