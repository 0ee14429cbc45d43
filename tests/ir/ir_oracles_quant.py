"""Scalar formulations of the quantization ops, written from the ONNX operator docs.

Each element is computed on its own with NumPy f32 scalars for the one float operation the op
defines (a division or a multiply), Python's round() (half to even) and Python int arithmetic for
zero points, saturation and i32 wrapping, so a vectorization mistake in the reference shows up.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ir_oracles_nn import _conv2d_loops, _conv2d_out_shape

RANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


def _param(v: np.ndarray, idx: tuple, axis: int):
    return v[()] if v.ndim == 0 else v[idx[axis]]


def _saturate(r: np.float32, zp: int, dtype, relu=False) -> int:
    lo, hi = RANGE[np.dtype(dtype)]
    if relu:
        lo = max(lo, zp)
    if math.isnan(r):
        return lo                # as onnxruntime: NaN saturates to the lower bound
    if math.isinf(r):
        return hi if r > 0 else lo
    q = round(float(r))          # Python rounds half to even
    return min(max(q + zp, lo), hi)


def _wrap32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def _each(shape, dtype, element):
    """An array of `shape` whose element at idx is element(idx)."""
    y = np.empty(shape, dtype)
    for idx in itertools.product(*map(range, shape)):
        y[idx] = element(idx)
    return y


def _axis(attrs, data) -> int:
    return attrs.get("axis", -1) % max(data.ndim, 1)


def quantize(xs, attrs):
    x, scale, zp = xs
    axis = _axis(attrs, x)

    def element(idx):
        with np.errstate(all="ignore"):
            r = np.float32(x[idx]) / np.float32(_param(scale, idx, axis))
        return _saturate(r, int(_param(zp, idx, axis)), zp.dtype)
    return [_each(x.shape, zp.dtype, element)]


def dequantize(xs, attrs):
    q, scale, zp = xs
    axis = _axis(attrs, q)
    return [_each(q.shape, np.float32, lambda idx: np.float32(int(q[idx]) - int(_param(zp, idx, axis)))
                  * np.float32(_param(scale, idx, axis)))]


def requantize(xs, attrs):
    acc, mult, zp = xs
    axis = _axis(attrs, acc)

    def element(idx):
        with np.errstate(all="ignore"):
            r = np.float32(int(acc[idx])) * np.float32(_param(mult, idx, axis))
        return _saturate(r, int(zp), zp.dtype, attrs.get("relu", False))
    return [_each(acc.shape, zp.dtype, element)]


def matmul_integer(xs, attrs):
    a, b, azp, bzp = xs
    k_n, m_n = b.shape
    y = np.empty(a.shape[:-1] + (m_n,), np.int32)
    for idx in itertools.product(*map(range, a.shape[:-1])):
        for m in range(m_n):
            bz = int(_param(bzp, (m,), 0))
            y[idx + (m,)] = _wrap32(sum((int(a[idx + (k,)]) - int(azp)) * (int(b[k, m]) - bz) for k in range(k_n)))
    return [y]


def conv2d_integer(xs, attrs):
    x, w, xzp, wzp = xs
    acc = np.zeros(_conv2d_out_shape(x.shape, w.shape, attrs), object)
    for n, oh, ow, co, kh, kw, c, ih, iw, ci in _conv2d_loops(x.shape, w.shape, attrs):
        acc[n, oh, ow, co] += (int(x[n, ih, iw, ci]) - int(xzp)) * (int(w[kh, kw, c, co]) - int(_param(wzp, (co,), 0)))
    return [np.vectorize(_wrap32, otypes=[np.int64])(acc).astype(np.int32) if acc.size else acc.astype(np.int32)]
