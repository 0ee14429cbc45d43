"""Independent formulations of the control ops (scan), written as the recurrences they stand for."""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, TensorType


def rnn_cell(batch, features, units, dtype="f32"):
    """The scan body h' = tanh(x W + h U), y = h' * h' (two results)."""
    b = GraphBuilder("cell")
    h, x = b.input("h", TensorType([batch, units], dtype)), b.input("x", TensorType([batch, features], dtype))
    w, u = b.input("w", TensorType([features, units], dtype)), b.input("u", TensorType([units, units], dtype))
    h_new = b.tanh(b.add(b.matmul(x, w), b.matmul(h, u)))
    return b.build([h_new, b.mul(h_new, h_new)], ["h", "y"])


def running_sum(width, dtype="f32"):
    """The scan body s' = s + x, y = s' (a cumulative sum) and a step count carried as i32."""
    b = GraphBuilder("running_sum")
    s, n, x = b.input("s", TensorType([width], dtype)), b.input("n", TensorType([], "i32")), \
        b.input("x", TensorType([width], dtype))
    s_new = b.add(s, x)
    return b.build([s_new, b.add(n, b.constant(np.int32(1))), s_new], ["s", "n", "y"])


def rnn(arrays, attrs):
    h, xs, w, u = (np.asarray(a, np.float64) for a in arrays)
    steps = range(xs.shape[1])
    ys = np.zeros(xs.shape[:2] + (h.shape[1],))
    for t in (reversed(steps) if attrs.get("reverse") else steps):
        h = np.tanh(xs[:, t] @ w + h @ u)
        ys[:, t] = h * h
    dt = arrays[0].dtype
    return [h.astype(dt), ys.astype(dt)]


def cumulative(arrays, attrs):
    s, n, xs = arrays
    order = xs[::-1] if attrs.get("reverse") else xs
    sums = np.cumsum(order.astype(np.float64), axis=0) + s
    sums = sums[::-1] if attrs.get("reverse") else sums
    final = sums[0] if attrs.get("reverse") else sums[-1]
    return [final.astype(xs.dtype), np.int32(n + len(xs)), sums.astype(xs.dtype)]
