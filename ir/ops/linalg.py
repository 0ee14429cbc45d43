"""Matmul: batched, NumPy broadcasting over leading dims, optional transposes of the last two."""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import BATCH, TensorType
from ._util import broadcast_shapes, fmt_shape, numeric, require, same_dtype


def _matmul_infer(ts, attrs):
    a, b = ts
    same_dtype(ts)
    numeric(a, "matmul")
    require(a.rank >= 2 and b.rank >= 2, f"matmul needs rank >= 2 operands, got {a} and {b}")
    m, ka = (a.shape[-1], a.shape[-2]) if attrs["transpose_a"] else (a.shape[-2], a.shape[-1])
    kb, n = (b.shape[-1], b.shape[-2]) if attrs["transpose_b"] else (b.shape[-2], b.shape[-1])
    require(ka == kb, f"matmul contraction mismatch: {a} (k={ka}) and {b} (k={kb})")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    shape = batch + (m, n)
    # a sequence symbol (T) may stand among the rows ([N, T, F] @ [F, G]); the batch symbol only leads
    require(not any(isinstance(d, str) and d in (BATCH, shape[0]) for d in shape[1:]),
            f"matmul would move the batch dimension: {fmt_shape(a.shape)} x {fmt_shape(b.shape)}")
    return [TensorType(shape, a.dtype)]


def _matmul_ref(xs, attrs, batch):
    a, b = xs
    if attrs["transpose_a"]:
        a = np.swapaxes(a, -1, -2)
    if attrs["transpose_b"]:
        b = np.swapaxes(b, -1, -2)
    return [np.matmul(a, b).astype(xs[0].dtype)]


defop("matmul", ("a", "b"), _matmul_infer, _matmul_ref,
      attrs={"transpose_a": Attr("bool", False), "transpose_b": Attr("bool", False)},
      doc="a @ b over the last two axes; leading axes broadcast", traits=("anchor",))
