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
    sparsity: list = field(default_factory=list)     # one line per kernel the sparsify pass measured
    weight_bytes: str | None = None                   # the compiled weights against the dense ones

    def note_plans(self, planned: dict):
        """Kernel count and arena size from the fused, memory-planned graphs."""
        self.kernel_count = sum(len(g.nodes) for g in planned.values())  # after fuse, one node = one kernel
        self._note_sparsity(planned.get("forward"))
        plans = {kind: g.meta["memory"] for kind, g in planned.items() if "memory" in g.meta}
        if plans:
            self.arena = ", ".join("".join(f"{c:,}*{'*'.join(t)} + " for t, c in p.terms)   # terms in T, N*T
                                   + f"{p.batched_bytes_per_row:,}*N + {p.static_bytes:,} bytes ({kind})"
                                   for kind, p in plans.items())

    def _note_sparsity(self, graph):
        from kcompile.passes.sparsify import weight_bytes
        if graph is None or "sparsity" not in graph.meta:
            return
        decisions = graph.meta["sparsity"]
        self.sparsity = [d.line() for d in decisions]
        saved = sum(d.dense_bytes - d.sparse_bytes for d in decisions if d.sparse)
        compiled = weight_bytes(graph)
        self.weight_bytes = f"{compiled:,} bytes (dense: {compiled + saved:,}, {(compiled + saved) / max(1, compiled):.2f}x)"

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
        if self.weight_bytes is not None:
            out.append(f"  weights: {self.weight_bytes}")
        out += [f"  sparse: {line}" for line in self.sparsity]
        for name, secs in self.pass_times:
            out.append(f"  {name:<32} {secs * 1e3:9.2f} ms")
        return out
