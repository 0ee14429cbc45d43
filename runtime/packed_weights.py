"""A loaded artifact's prepacked f32 weights (ir/f32_panels.py): kept equal to their source weights.

weights.bin holds each packed companion as the compiler packed it. The forward code reads the
companion, so whatever writes a source weight in the parameter block (set_weights, a train_step's
in-place update) makes it stale: those writers bump the weight epoch (ir/weight_epoch.py), and the
forward paths repack before running when the epoch moved since the last pack (the prepared call
checks it per call, ir/call_plan.py). get_weights and set_weights never show the companions.
"""
from __future__ import annotations

import threading

from kcompile.ir import f32_panels, weight_epoch


class ArtifactPacks:
    """views(name) -> the parameter block's array for a manifest parameter (its shape and dtype)."""

    def __init__(self, params: list, views):
        names = {p["name"] for p in params}
        self.pairs = [(views(spec[0]), views(p["name"]), p["name"])
                      for p in params for spec in [f32_panels.parse_packed_name(p["name"])]
                      if spec is not None and spec[0] in names]
        self.epoch = weight_epoch.current
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.pairs)

    @staticmethod
    def derived(name: str) -> bool:
        return f32_panels.parse_packed_name(name) is not None

    def refresh(self) -> None:
        """Repack every companion from its source (in place: the code's addresses stay)."""
        with self._lock:
            epoch = weight_epoch.current   # read first: a write during the repack leaves it stale
            for src, packed, name in self.pairs:
                f32_panels.packed_value(name, src, packed.reshape(-1))
            self.epoch = epoch

    def refresh_if_stale(self) -> None:
        if self.pairs and self.epoch != weight_epoch.current:
            self.refresh()
