"""A counter-based random op, bit-identical in the reference and in native code.

random_uniform_like(x, counter) {seed} gives f32 in [0, 1) of x's shape. For the element at
row-major flat index i (taken mod 2**32), with lo/hi the low/high 32 bits of the i64 counter:

    s = fmix32(seed * 0x9E3779B9 + lo)          # all arithmetic on uint32, wrapping
    s = fmix32(s ^ (hi * 0x85EBCA6B))
    h = fmix32(s ^ (i * 0xCC9E2D51))
    u = (h >> 8) * 2**-24

with fmix32 the MurmurHash3 finalizer. A new counter each step gives new dropout masks.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import f32, i64
from ..registry import Attr, defop
from ..types import TensorType
from ._util import require

M32 = np.uint64(0xFFFFFFFF)


def fmix32(h):
    h = np.asarray(h, dtype=np.uint64) & M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & M32
    h ^= h >> np.uint64(16)
    return h


def uniform_bits(seed: int, counter: int, n: int) -> np.ndarray:
    """The uint32 hash for flat indices 0..n-1 (uint64 arrays holding 32-bit values)."""
    c = int(counter) & 0xFFFFFFFFFFFFFFFF
    lo, hi = np.uint64(c & 0xFFFFFFFF), np.uint64(c >> 32)
    s = fmix32((np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B9) + lo) & M32)
    s = fmix32(s ^ ((hi * np.uint64(0x85EBCA6B)) & M32))
    i = np.arange(n, dtype=np.uint64) & M32
    return fmix32(s ^ ((i * np.uint64(0xCC9E2D51)) & M32))


def _infer(ts, attrs):
    require(ts[1].dtype == i64 and ts[1].rank == 0, f"counter must be an i64 scalar, got {ts[1]}")
    return [TensorType(ts[0].shape, f32)]


def _ref(xs, attrs, batch):
    x, counter = xs
    h = uniform_bits(attrs["seed"], int(counter), x.size)
    return [((h >> np.uint64(8)).astype(np.float32) * np.float32(2.0 ** -24)).reshape(x.shape)]


defop("random_uniform_like", ("x", "counter"), _infer, _ref, attrs={"seed": Attr("int", 0)},
      differentiable=False, doc="deterministic U[0,1) f32 of x's shape from (seed, counter, index)")
