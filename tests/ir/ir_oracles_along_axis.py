"""Independent oracles for stop_gradient, cumsum and top_k: plain Python loops over rows."""
from __future__ import annotations

import numpy as np


def stop_gradient(xs, attrs):
    return [xs[0].copy()]


def cumsum(xs, attrs):
    x = xs[0]
    ax = attrs.get("axis", -1) % x.ndim
    moved = np.moveaxis(x, ax, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(*moved.shape[:-1]):
        row = moved[idx].tolist()
        order = range(len(row) - 1, -1, -1) if attrs.get("reverse", False) else range(len(row))
        total = 0
        for t in order:
            total += row[t]
            out[idx + (t,)] = total
    return [np.moveaxis(out, -1, ax)]


def top_k(xs, attrs):
    x, k = xs[0], attrs["k"]
    vals = np.empty(x.shape[:-1] + (k,), x.dtype)
    idxs = np.empty(x.shape[:-1] + (k,), np.int32)
    for idx in np.ndindex(*x.shape[:-1]):
        row = x[idx].tolist()
        # largest first; among equal values the lower position first
        best = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        vals[idx] = [row[j] for j in best]
        idxs[idx] = best
    return [vals, idxs]
