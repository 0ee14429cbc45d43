"""Oracle for sparse_matmul: the dense kernel rebuilt block by block with plain loops, then a @ W."""
from __future__ import annotations

import numpy as np


def sparse_matmul(xs, attrs):
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
