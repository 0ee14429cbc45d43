"""The compile report: pass timings, kernel count, arena size, parameter count and files written."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Report:
    """What the compile report prints: pass timings, kernels, arena, parameters, files."""
    pass_times: list = field(default_factory=list)   # (pass name, seconds)
    kernel_count: int | None = None
    arena: str | None = None                          # workspace bytes as a function of the batch N
    param_count: int = 0
    files: list = field(default_factory=list)
    seconds: float = 0.0
    quantization: dict | None = None                  # the quantize-int8 pass's report (--quantize)

    def note_plans(self, planned: dict):
        """Kernel count and arena size from the fused, memory-planned graphs."""
        self.kernel_count = sum(len(g.nodes) for g in planned.values())  # after fuse, one node = one kernel
        plans = {kind: g.meta["memory"] for kind, g in planned.items() if "memory" in g.meta}
        if plans:
            self.arena = ", ".join(f"{p.batched_bytes_per_row:,}*N + {p.static_bytes:,} bytes ({kind})"
                                   for kind, p in plans.items())

    def lines(self, outdir: Path) -> list:
        out = [f"kcompile: wrote {', '.join(self.files)} to {outdir} in {self.seconds:.2f} s",
               f"  parameters: {self.param_count:,}"]
        if self.kernel_count is not None:
            out.append(f"  kernels: {self.kernel_count}")
        if self.arena is not None:
            out.append(f"  arena: {self.arena}")
        if self.quantization is not None:
            from .quantize import report_lines
            out += report_lines(self.quantization)
        for name, secs in self.pass_times:
            out.append(f"  {name:<32} {secs * 1e3:9.2f} ms")
        return out
