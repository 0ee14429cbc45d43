"""Oracles for sparse_matmul and sparse_qmatmul: the dense kernel rebuilt block by block (slot by slot)
with plain loops, then a @ W (in Python integers for the int8 op)."""
from __future__ import annotations

import numpy as np


def sparse_matmul(xs, attrs):
    if attrs.get("layout") == "windows":
        return _windows(xs, attrs)
    a, values, index, offsets = xs
    bk, bn = attrs["block"]
    k, n = a.shape[-1], (len(offsets) - 1) * bn
    w = np.zeros((k, n), np.float64)
    for j in range(len(offsets) - 1):
        for p in range(offsets[j], offsets[j + 1]):
            for r in range(bk):
                for c in range(bn):
                    w[index[p] * bk + r, j * bn + c] += values[(p * bk + r) * bn + c]
    return [(a.astype(np.float64) @ w).astype(a.dtype)]


def random_structure(rng, k: int, n: int, block, nblocks: int):
    """(values, index, offsets): nblocks blocks in random columns and rows (repeats and empty columns allowed)."""
    bk, bn = block
    cols = np.sort(rng.integers(0, n // bn, nblocks))
    offsets = np.searchsorted(cols, np.arange(n // bn + 1)).astype(np.int32)
    index = rng.integers(0, k // bk, nblocks).astype(np.int32)
    values = rng.uniform(-2, 2, nblocks * bk * bn).astype(np.float32)
    return values, index, offsets


def _windows(xs, attrs):
    """The "windows" layout slot by slot: group g = panel * nwin + window owns steps offsets[g]..;
    slot lane l of step t adds values[t*C + l] at (rows[window*G + index], cols[panel*C + l]), where
    rows and cols are the orders after the groups + 1 step offsets; 255 is an empty slot."""
    a = xs[0]
    return [(a.astype(np.float64) @ _windows_kernel(xs, attrs, np.float64)).astype(a.dtype)]


def _windows_kernel(xs, attrs, dtype):
    """W of a windows layout; with block (G, C, P) slot s of step t is lane s // P's."""
    a, values, index, offsets = xs[:4]
    g, c, p = (*attrs["block"], 1)[:3]
    k, n = a.shape[-1], attrs["n"]
    nwin, groups = -(-k // g), -(-k // g) * -(-n // c)
    rows, cols = offsets[groups + 1:groups + 1 + k], offsets[groups + 1 + k:]
    w = np.zeros((k, n), dtype)
    for grp in range(groups):
        panel, window = divmod(grp, nwin)
        for t in range(offsets[grp], offsets[grp + 1]):
            for slot in range(c * p):
                at = t * c * p + slot
                q, j = window * g + int(index[at]), panel * c + slot // p
                if index[at] != 255 and q < k and j < n:
                    w[rows[q], cols[j]] += values[at].item()
    return w


def sparse_qmatmul(xs, attrs):
    """(a - a_zp) @ W in Python integers, wrapped to i32."""
    a, azp = xs[0], int(xs[4])
    w = _windows_kernel(xs, attrs, object)
    acc = (a.astype(object) - azp) @ w
    return [np.vectorize(lambda v: (int(v) + 2**31) % 2**32 - 2**31, otypes=[np.int64])(acc).astype(np.int32)]


def random_windows(rng, k: int, n: int, block, steps: int, int8: bool = False):
    """(values, index, offsets) in the windows layout: random steps per group, empty slots (255),
    repeated inputs in a lane (they add up), random input and output orders; int8 values if asked."""
    g, c, p = (*block, 1)[:3]
    groups = -(-k // g) * -(-n // c)
    slots = steps * c * p
    offsets = np.concatenate([[0], np.sort(rng.integers(0, steps + 1, groups - 1)), [steps], rng.permutation(k),
                              rng.permutation(n)]).astype(np.int32)
    index = rng.integers(0, g, slots).astype(np.uint8)
    index[rng.random(slots) < 0.3] = 255
    values = rng.integers(-128, 128, slots).astype(np.int8) if int8 else rng.uniform(-2, 2, slots).astype(np.float32)
    return values, index, offsets


def patches(xs, attrs):
    """Element by element: output (n, o..., (k... , c)) reads x at o * stride + k * dilation - pad before."""
    (x,) = xs
    one_d = len(attrs["kernel"]) == 1
    x4 = x[:, None] if one_d else x
    kernel, strides, dil = ((1, *attrs[k]) if one_d else tuple(attrs[k]) for k in ("kernel", "strides", "dilations"))
    outs, befores = [], []
    for size, k, s, d in zip(x4.shape[1:3], kernel, strides, dil):
        eff = (k - 1) * d + 1
        out = (size - eff) // s + 1 if attrs["padding"] == "valid" else -(-size // s)
        befores.append(0 if attrs["padding"] == "valid" else max((out - 1) * s + eff - size, 0) // 2)
        outs.append(out)
    c = x4.shape[-1]
    y = np.full((x4.shape[0], *outs, kernel[0] * kernel[1] * c), attrs.get("pad_value", 0), x.dtype)
    for n in range(x4.shape[0]):
        for oh in range(outs[0]):
            for ow in range(outs[1]):
                for kh in range(kernel[0]):
                    for kw in range(kernel[1]):
                        ih, iw = oh * strides[0] + kh * dil[0] - befores[0], ow * strides[1] + kw * dil[1] - befores[1]
                        if 0 <= ih < x4.shape[1] and 0 <= iw < x4.shape[2]:
                            y[n, oh, ow, (kh * kernel[1] + kw) * c:(kh * kernel[1] + kw + 1) * c] = x4[n, ih, iw]
    return [y[:, 0] if one_d else y]
