"""Oracle for sparse_matmul: the dense kernel rebuilt block by block with plain loops, then a @ W."""
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
    a, values, index, offsets = xs
    g, c = attrs["block"]
    k, n = a.shape[-1], attrs["n"]
    nwin, groups = -(-k // g), -(-k // g) * -(-n // c)
    rows, cols = offsets[groups + 1:groups + 1 + k], offsets[groups + 1 + k:]
    w = np.zeros((k, n), np.float64)
    for grp in range(groups):
        panel, window = divmod(grp, nwin)
        for t in range(offsets[grp], offsets[grp + 1]):
            for lane in range(c):
                q, j = window * g + int(index[t * c + lane]), panel * c + lane
                if index[t * c + lane] != 255 and q < k and j < n:
                    w[rows[q], cols[j]] += values[t * c + lane]
    return [(a.astype(np.float64) @ w).astype(a.dtype)]


def random_windows(rng, k: int, n: int, block, steps: int):
    """(values, index, offsets) in the windows layout: random steps per group, empty slots (255),
    repeated inputs in a lane (they add up), random input and output orders."""
    g, c = block
    groups = -(-k // g) * -(-n // c)
    offsets = np.concatenate([[0], np.sort(rng.integers(0, steps + 1, groups - 1)), [steps], rng.permutation(k),
                              rng.permutation(n)]).astype(np.int32)
    index = rng.integers(0, g, steps * c).astype(np.uint8)
    index[rng.random(steps * c) < 0.3] = 255
    values = rng.uniform(-2, 2, steps * c).astype(np.float32)
    return values, index, offsets
