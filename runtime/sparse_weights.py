"""Dense weights of an artifact that stores some kernels sparse (manifest "sparse_weights").

The sparsify pass replaced such a kernel by three parameters (values, index, offsets; see
kcompile/ir/ops/sparse.py) and the code reads only those. Callers still see the dense kernel
under its own name: get_weights rebuilds it, set_weights takes a dense array and writes its
values into the compiled pattern, refusing one with a nonzero outside the pattern (the code has
no place for it: recompile the model instead). The index parameters are never writable, since
native code trusts them.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir.ops.sparse import SPARSE_PARTS, check_structure, pattern_mask, to_dense, windows_coords

from .artifact_check import ArtifactError


class SparseWeights:
    """The sparse kernels of one artifact: read and write them as dense arrays."""

    def __init__(self, specs: list, view):
        """specs: manifest "sparse_weights"; view(part name) -> the live array of a parameter."""
        self.specs = {s["name"]: s for s in specs}
        self.part_of = {s[part]: s["name"] for s in specs for part in SPARSE_PARTS}
        self._view = view
        self._masks: dict = {}
        for s in specs:  # weights.bin passed its checksum; the structure is checked before code uses it
            try:
                check_structure(view(s["index"]), view(s["offsets"]), s["shape"][0], s["block"], *_layout(s))
            except ValueError as e:
                raise ArtifactError(f"sparse weight '{s['name']}': {e}") from None

    def dense_shape(self, name: str) -> list:
        """The dense parameter's shape: [K, N], or a convolution kernel's own (its [K, N] view is stored)."""
        s = self.specs[name]
        return s.get("dense_shape", s["shape"])

    def dense(self, name: str) -> np.ndarray:
        s = self.specs[name]
        w = to_dense(*(self._view(s[p]) for p in SPARSE_PARTS), s["shape"][0], s["block"], *_layout(s))
        return w.reshape(self.dense_shape(name))

    def mask(self, name: str) -> np.ndarray:
        if name not in self._masks:
            s = self.specs[name]
            self._masks[name] = pattern_mask(self._view(s["index"]), self._view(s["offsets"]), s["shape"][0],
                                             s["block"], *_layout(s))
        return self._masks[name]

    def compact_values(self, name: str, w: np.ndarray) -> np.ndarray:
        """The values array for dense `w`, or a ValueError naming the parameter if w leaves the pattern."""
        s = self.specs[name]
        w = w.reshape(s["shape"])       # a convolution kernel as its [K, N] view
        outside = (w != 0) & ~self.mask(name)
        if outside.any():
            where = tuple(int(i) for i in np.argwhere(outside)[0])
            raise ValueError(f"parameter '{name}' has {int(outside.sum())} nonzero weight(s) outside the sparsity "
                             f"pattern this artifact was compiled for (the first at {list(where)}); its code has no "
                             f"place for them: recompile the model with these weights (kcompile MODEL -o OUT), or "
                             f"compile with --sparse never to keep kernels replaceable")
        index, offsets = self._view(s["index"]), self._view(s["offsets"])
        if _layout(s)[0] == "windows":
            return _windows_values(w, index, offsets, s["block"])
        k, n = s["shape"]
        bk, bn = s["block"]
        col_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        blocks = w.reshape(k // bk, bk, n // bn, bn).transpose(2, 0, 1, 3)  # [col, row, bk, bn]
        # a block stored twice would add up: keep the first copy, zero the rest (the pass never repeats one)
        first = np.zeros(len(index), bool)
        if len(index):
            first[np.unique(np.stack([col_of, index]), axis=1, return_index=True)[1]] = True
        return (blocks[col_of, index] * first[:, None, None]).reshape(-1)

    def logical(self, params: list) -> list:
        """Manifest params with each sparse kernel's three parts replaced by one ("dense", name) entry."""
        out = []
        for p in params:
            owner = self.part_of.get(p["name"])
            if owner is None:
                out.append(("param", p))
            elif self.specs[owner]["values"] == p["name"]:
                out.append(("dense", owner))
        return out

    def refuse_part(self, param: str) -> None:
        if param in self.part_of:
            raise ValueError(f"parameter '{param}' is part of the compiled sparse storage of "
                             f"'{self.part_of[param]}'; set '{self.part_of[param]}' (a dense array) instead")


def _layout(spec: dict) -> tuple:
    """(layout, outputs) arguments of the ir.ops.sparse functions for a manifest entry."""
    return spec.get("layout", "blocks"), spec["shape"][1]


def _windows_values(w: np.ndarray, index, offsets, block) -> np.ndarray:
    """The "windows" values array for dense w (slots past the pattern, and repeats of a slot, zero)."""
    rows, cols, ok = windows_coords(index, offsets, w.shape[0], w.shape[1], block)
    slots = np.flatnonzero(ok)
    first = np.unique(rows[slots] * w.shape[1] + cols[slots], return_index=True)[1]   # a repeat would add up
    values = np.zeros(len(index), w.dtype)
    values[slots[first]] = w[rows[slots[first]], cols[slots[first]]]
    return values
