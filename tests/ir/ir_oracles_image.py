"""Naive per-pixel loops for the image ops, written from the definitions (jax.image.resize and
jax.scipy.ndimage.map_coordinates as Keras uses them), in float64 with scalar Python arithmetic."""
from __future__ import annotations

import math

import numpy as np


def _axis_taps(i: int, size_in: int, size_out: int, interpolation: str):
    """[(input index, weight)] for output index i along one axis."""
    if interpolation == "nearest":
        return [(min(int(math.floor((i + 0.5) * size_in / size_out)), size_in - 1), 1.0)]
    p = min(max((i + 0.5) * size_in / size_out - 0.5, 0.0), size_in - 1.0)   # edge pixels repeat
    lo = int(math.floor(p))
    hi = min(lo + 1, size_in - 1)
    return [(lo, 1.0 - (p - lo)), (hi, p - lo)]


def resize(xs, attrs):
    x = xs[0].astype(np.float64)
    (n, h, w, c), (oh, ow) = x.shape, attrs["size"]
    interp = attrs.get("interpolation", "bilinear")
    y = np.zeros((n, oh, ow, c))
    for o in range(oh):
        for p in range(ow):
            for r, wr in _axis_taps(o, h, oh, interp):
                for q, wq in _axis_taps(p, w, ow, interp):
                    y[:, o, p] += wr * wq * x[:, r, q]
    return [y.astype(xs[0].dtype)]


def _fix(i: int, n: int, mode: str):
    """The in-range index for i, or None where the constant fill applies."""
    if mode == "constant":
        return i if 0 <= i < n else None
    if mode == "nearest":
        return min(max(i, 0), n - 1)
    if mode == "wrap":
        return i % n
    if mode == "mirror":   # ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...
        if n == 1:
            return 0
        while not 0 <= i < n:
            i = -i if i < 0 else 2 * (n - 1) - i
        return i
    while not 0 <= i < n:  # reflect: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
        i = -i - 1 if i < 0 else 2 * n - 1 - i
    return i


def _round_half_away(v: float) -> int:
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def affine_transform(xs, attrs):
    x, t = xs[0].astype(np.float64), xs[1].astype(np.float64).reshape(-1, 8)
    n, h, w, c = x.shape
    interp, mode = attrs.get("interpolation", "bilinear"), attrs.get("fill_mode", "constant")
    fill = attrs.get("fill_value", 0.0)
    y = np.zeros_like(x)
    for b in range(n):
        a0, a1, a2, b0, b1, b2, c0, c1 = t[b if len(t) > 1 else 0]
        for i in range(h):
            for j in range(w):
                k = c0 * j + c1 * i + 1
                src = [(b0 * j + b1 * i + b2) / k, (a0 * j + a1 * i + a2) / k]
                if interp == "nearest":
                    taps = [[(_round_half_away(p), 1.0)] for p in src]
                else:
                    taps = [[(math.floor(p), 1 - (p - math.floor(p))), (math.floor(p) + 1, p - math.floor(p))]
                            for p in src]
                for r, wr in taps[0]:
                    for q, wq in taps[1]:
                        fr, fq = _fix(r, h, mode), _fix(q, w, mode)
                        v = x[b, fr, fq] if fr is not None and fq is not None else fill
                        y[b, i, j] += wr * wq * v
    return [y.astype(xs[0].dtype)]
