"""A loaded artifact's prepacked f32 weights (ir/f32_panels.py): kept equal to their source weights.

weights.bin holds each packed companion as the compiler packed it. The forward code reads the
companion, so whatever writes a source weight in the parameter block (set_weights, a train_step's
in-place update) makes it stale: those writers bump the weight epoch (ir/weight_epoch.py), and the
forward paths repack before running when the epoch moved since the last pack (the prepared call
checks it per call, ir/call_plan.py). get_weights and set_weights never show the companions.
"""
from __future__ import annotations

from kcompile.ir import f32_panels


def artifact_packs(params: list, views) -> f32_panels.Repacker:
    """The Repacker of an artifact's packed companions; views(name) -> the parameter block's array
    for a manifest parameter (its shape and dtype)."""
    names = {p["name"] for p in params}
    return f32_panels.Repacker((views(spec[0]), views(p["name"]), p["name"])
                               for p in params for spec in [f32_panels.parse_packed_name(p["name"])]
                               if spec is not None and spec[0] in names)


def derived(name: str) -> bool:
    """Whether a manifest parameter is a packed companion (hidden from get_weights/set_weights)."""
    return f32_panels.parse_packed_name(name) is not None
