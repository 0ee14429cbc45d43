"""The --emit kinds: each writes its files for a CompileJob into the staging folder."""
from __future__ import annotations

import json
import os

from .errors import CLIError
from .job import CompileJob, code_library, entry_graphs, native_module, planned_graphs, target_machine


def _emit_ir(job: CompileJob):
    from kcompile.ir import print_graph
    job.write_text(f"{job.name}.kir", print_graph(job.graph))


def _emit_onnx(job: CompileJob):
    """NAME.onnx (inference); with --train also NAME.train_step.onnx, whose "update:*" outputs are
    the new parameter values."""
    from kcompile.compiler.onnx_export import DEFAULT_OPSET, export_onnx
    graphs = {"": job.graph} | ({".train_step": entry_graphs(job)["train_step"]} if job.args.train else {})
    for suffix, graph in graphs.items():
        filename = f"{job.name}{suffix}.onnx"
        export_onnx(graph, job.stage / filename, opset=job.args.opset or DEFAULT_OPSET, batch=job.args.batch)
        job.report.files += sorted(p.name for p in job.stage.iterdir() if p.name.startswith(filename))


def _emit_opt(job: CompileJob):
    """The planned IR (fused nodes included), then the buffer plan as // comments (it still parses)."""
    from kcompile.ir import print_graph
    from kcompile.passes.memory import format_memory
    for kind, graph in planned_graphs(job).items():
        suffix = "" if kind == "forward" else f".{kind}"
        notes = format_memory(graph)
        job.write_text(f"{job.name}{suffix}.opt.kir", print_graph(graph) + (f"{notes}\n" if notes else ""))


def _emit_llvm(job: CompileJob):
    job.write_text(f"{job.name}.ll", code_library(job).optimized_ir())


def _emit_asm(job: CompileJob):
    job.write_text(f"{job.name}.s", code_library(job).emit_assembly())


def _emit_obj(job: CompileJob):
    (job.stage / f"{job.name}.o").write_bytes(code_library(job).emit_object())
    job.report.files.append(f"{job.name}.o")


def _emit_so(job: CompileJob):
    """The artifact folder's files (library, header, manifest, weights) straight into OUTDIR."""
    from kcompile.compiler.artifact import write_artifact
    target_machine(job.args.target)
    if job.args.passes:
        raise CLIError("--passes applies to --emit opt/llvm/asm/obj; the artifact is built with the -O pipeline")
    planned_graphs(job)  # the pass-level report, checks and dumps (--verify-each, --print-ir-after-all)
    entries = entry_graphs(job)
    built = write_artifact(entries["forward"], job.stage / ".artifact", job.name, train_step=entries.get("train_step"),
                           opt_level=job.args.opt_level)
    for f in sorted(built.iterdir()):
        os.replace(f, job.stage / f.name)
        job.report.files.append(f.name)
    built.rmdir()
    manifest = json.loads((job.stage / "manifest.json").read_text())
    # the graph passes are already in the report (from planned_graphs); add the code generation steps
    job.report.pass_times += [(f"{k} (so)", v) for k, v in manifest.get("compile_seconds", {}).items() if "(@" not in k]


def _emit_header(job: CompileJob):
    from kcompile.compiler.artifact import header
    if (job.stage / f"{job.name}.h").exists():  # --emit so wrote it already
        return
    job.write_text(f"{job.name}.h", header(job.name, native_module(job), planned_graphs(job)))


EMITTERS = {"ir": _emit_ir, "opt": _emit_opt, "llvm": _emit_llvm, "asm": _emit_asm, "obj": _emit_obj,
            "so": _emit_so, "header": _emit_header, "onnx": _emit_onnx}
