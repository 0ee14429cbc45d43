"""One compile job: the model, the options, the staging folder, and its one compiler.driver.Compilation."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CLIError
from .report import Report
from .source import forward_graph
from .train import train_step_graph


@dataclass
class CompileJob:
    """One compile: the model, the options, the staging folder, and what was computed once."""
    model: object
    args: argparse.Namespace
    stage: Path
    report: Report = field(default_factory=Report)
    _graph: object = None
    _entries: dict | None = None
    _compilation: object = None

    @property
    def name(self) -> str:
        """Base name of the files and the C symbols: a C identifier."""
        raw = self.args.name or self.graph.name or "model"
        name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in raw)
        return name if not name[0].isdigit() else f"m_{name}"

    @property
    def graph(self):
        """The traced inference graph."""
        if self._graph is None:
            self._graph = forward_graph(self.model)
            if self.args.quantize:
                from .quantize import quantize_graph
                self._graph = quantize_graph(self._graph, self.args, self.report)
            self.report.param_count = sum(int(np.prod(p.type.shape)) for p in self._graph.params)
        return self._graph

    @property
    def entries(self) -> dict:
        """Entry kind -> graph: the forward pass, and the training step with --train (--batch applied)."""
        if self._entries is None:
            entries = {"forward": self.graph}
            if self.args.train:
                entries["train_step"] = train_step_graph(self.model, self.args.optimizer, self.args.loss)
            if self.args.batch is not None:
                from kcompile.passes.specialize import specialize_batch
                entries = {kind: specialize_batch(g, self.args.batch) for kind, g in entries.items()}
            self._entries = entries
        return self._entries

    @property
    def compilation(self):
        """The one Compilation of the entry graphs that every native emit kind reads its stage from."""
        if self._compilation is None:
            from kcompile.compiler.disk_cache import DiskCache
            from kcompile.compiler.driver import Compilation, CompileOptions
            a = self.args
            options = CompileOptions(opt_level=a.opt_level, passes=a.passes, verify_each=a.verify_each,
                                     print_ir_after_all=a.print_ir_after_all, target=target_machine(a.target),
                                     sparse=sparse_mode(a))
            self._compilation = Compilation(self.entries, self.name, options, disk_cache=DiskCache.from_environment())
        return self._compilation

    @property
    def planned(self) -> dict:
        """The entry graphs after the pass pipeline (noting kernels and arena in the report)."""
        planned = self.compilation.planned
        if self.report.kernel_count is None:
            self.report.note_plans(planned)
        return planned

    def write_text(self, filename: str, text: str):
        (self.stage / filename).write_text(text)
        if filename not in self.report.files:
            self.report.files.append(filename)


def sparse_mode(args) -> str:
    """The sparsify mode for --sparse (default auto); training artifacts keep their kernels dense."""
    return "never" if args.train else (args.sparse or "auto")


def target_machine(name: str):
    """The code generation target for --target: the host only."""
    from kcompile.compiler.target import host_target
    if name != "host":
        raise CLIError(f"--target {name}: only 'host' (this machine) is supported; cross-compilation is not")
    return host_target()
