"""The memory plan plan-memory computes: one arena, a region per term of the sizes polynomial.

A region is "static" (bytes), "batched" (bytes times N) or a tuple of symbols such as ("N", "T")
(bytes times N*T); regions follow each other in that order, the static one first, so a region's
base depends on the run-time sizes (compiler/dynamic_dims.py emits the same sums in native code).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryPlan:
    static_bytes: int                 # B
    batched_bytes_per_row: int        # A
    offsets: dict = field(default_factory=dict)  # Value (or scratch key) -> (region, offset in coefficient bytes)
    terms: tuple = ()                 # ((symbols, bytes per unit), ...): the regions after the batched one,
    #                                   e.g. (("T",), C), (("N", "T"), D); a region is "static", "batched" or symbols
    in_place: dict = field(default_factory=dict)  # update Value -> parameter name it is written into (update_in_place.py)

    def workspace_bytes(self, batch: int, dims: dict | None = None) -> int:
        sizes = {**(dims or {}), "N": batch}
        return self.static_bytes + self.batched_bytes_per_row * batch + \
            sum(c * term_value(t, sizes) for t, c in self.terms)

    def byte_offset(self, v, batch: int, dims: dict | None = None) -> int:
        region, off = self.offsets[v]
        sizes = {**(dims or {}), "N": batch}
        return self.region_base(region, sizes) + off * term_value(_symbols(region), sizes)

    def region_base(self, region, sizes: dict) -> int:
        """Byte offset of a region's start for these sizes (N and the other symbols)."""
        if region == "static":
            return 0
        base = self.static_bytes + self.batched_bytes_per_row * sizes["N"]
        for t, c in self.terms:
            if t == region:
                return base
            base += c * term_value(t, sizes)
        return base if region == "batched" else _missing(region)

    def formula(self) -> str:
        """The workspace size as a sum of terms, e.g. '512*N*T + 64*N + 128 bytes'."""
        parts = [f"{c}*{'*'.join(t)}" for t, c in self.terms] + [f"{self.batched_bytes_per_row}*N"]
        return " + ".join(parts + [f"{self.static_bytes} bytes"])

    @property
    def symbols(self) -> tuple:
        return tuple(sorted({d for t, _ in self.terms for d in t}))


def term_value(symbols: tuple, sizes: dict) -> int:
    n = 1
    for d in symbols:
        n *= sizes[d]
    return n


def _symbols(region) -> tuple:
    return {"static": (), "batched": ("N",)}.get(region, region)


def _missing(region):
    raise KeyError(f"no workspace region {region!r} in the memory plan")


def region_of(t) -> object:
    """The region of a tensor type: "static", "batched" (N only) or its sorted symbols (e.g. ("N", "T"))."""
    symbols = tuple(sorted("N" if i == 0 else d for i, d in enumerate(t.shape) if isinstance(d, str)))
    return {(): "static", ("N",): "batched"}.get(symbols, symbols)


def where(plan: MemoryPlan, region, off: int) -> str:
    """An offset as text: the region's base (earlier regions' sizes) plus off times the region's term."""
    if region == "static":
        return f"{off}"
    base = [f"{plan.static_bytes}"]
    for t, c in ((("N",), plan.batched_bytes_per_row),) + plan.terms:
        if t == _symbols(region):
            break
        base.append(f"{c}*{'*'.join(t)}")
    return f"{' + '.join(base)} + {off}*{'*'.join(_symbols(region))}"
