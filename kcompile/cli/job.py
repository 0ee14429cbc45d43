"""One compile job and the stages it computes once: entry graphs, planned graphs, generated code."""
from __future__ import annotations

import argparse
import sys
import time
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
    entries: dict | None = None      # entry kind -> graph to compile (forward, train_step)
    planned: dict | None = None      # entry kind -> graph after the pass pipeline
    native: object = None            # compiler.codegen.NativeModule
    library: object = None           # compiler.codelib.CodeLibrary
    _graph: object = None

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

    def write_text(self, filename: str, text: str):
        (self.stage / filename).write_text(text)
        if filename not in self.report.files:
            self.report.files.append(filename)


def entry_graphs(job: CompileJob) -> dict:
    """Entry kind -> graph: the forward pass, and the training step with --train (--batch applied)."""
    if job.entries is None:
        entries = {"forward": job.graph}
        if job.args.train:
            entries["train_step"] = train_step_graph(job.model, job.args.optimizer, job.args.loss)
        if job.args.batch is not None:
            from kcompile.passes.specialize import specialize_batch
            entries = {kind: specialize_batch(g, job.args.batch) for kind, g in entries.items()}
        job.entries = entries
    return job.entries


def planned_graphs(job: CompileJob) -> dict:
    """The entry graphs after the pass pipeline (-O level default, or --passes), run once."""
    if job.planned is None:
        from kcompile.compiler.driver import graph_pipeline
        from kcompile.passes.manager import PassManager
        pipeline = job.args.passes or graph_pipeline(job.args.opt_level)
        manager = PassManager(pipeline, verify_each=job.args.verify_each,
                              print_ir_after_all=job.args.print_ir_after_all, stream=sys.stderr)
        job.planned = {}
        for kind, graph in entry_graphs(job).items():
            job.planned[kind], report = manager.run(graph)
            job.report.pass_times += [(f"{r['name']} ({kind})", r["seconds"]) for r in report["passes"]]
        job.report.note_plans(job.planned)
    return job.planned


def native_module(job: CompileJob):
    """Generated LLVM IR of the planned entries (the driver's steps, with our pass pipeline)."""
    if job.native is None:
        from kcompile.compiler.codegen import generate
        planned = planned_graphs(job)
        t0 = time.perf_counter()
        job.native = generate(planned, job.name, target_machine(job.args.target))
        job.report.pass_times.append(("lower+codegen", time.perf_counter() - t0))
    return job.native


def code_library(job: CompileJob):
    """The generated code, parsed, verified and optimized by LLVM for the target."""
    if job.library is None:
        from kcompile.compiler.codelib import CodeLibrary
        native = native_module(job)
        job.library = CodeLibrary(job.name, native.ir_text, target_machine(job.args.target), job.args.opt_level)
        job.library.module  # parse, verify and optimize now, so that the timings are complete
        job.report.pass_times += list(job.library.timings.items())
    return job.library


def target_machine(name: str):
    """The code generation target for --target: the host only."""
    from kcompile.compiler.target import host_target
    if name != "host":
        raise CLIError(f"--target {name}: only 'host' (this machine) is supported; cross-compilation is not")
    return host_target()
