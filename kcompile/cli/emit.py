"""The --emit kinds: each writes its files for a CompileJob into the staging folder."""
from __future__ import annotations

import os

from .job import CompileJob


def _emit_ir(job: CompileJob):
    from kcompile.ir import print_graph
    job.write_text(f"{job.name}.kir", print_graph(job.graph))


def _emit_onnx(job: CompileJob):
    """NAME.onnx (inference); with --train also NAME.train_step.onnx, whose "update:*" outputs are
    the new parameter values."""
    from kcompile.compiler.onnx_export import DEFAULT_OPSET, export_onnx
    graphs = {"": job.graph} | ({".train_step": job.entries["train_step"]} if job.args.train else {})
    for suffix, graph in graphs.items():
        filename = f"{job.name}{suffix}.onnx"
        export_onnx(graph, job.stage / filename, opset=job.args.opset or DEFAULT_OPSET, batch=job.args.batch)
        job.report.files += sorted(p.name for p in job.stage.iterdir() if p.name.startswith(filename))


def _emit_opt(job: CompileJob):
    """The planned IR (fused nodes included), then the buffer plan as // comments (it still parses)."""
    from kcompile.ir import print_graph
    from kcompile.passes.memory import format_memory
    from kcompile.passes.sparsify import format_sparsity
    for kind, graph in job.planned.items():
        suffix = "" if kind == "forward" else f".{kind}"
        notes = [n for n in (format_sparsity(graph), format_memory(graph)) if n]
        job.write_text(f"{job.name}{suffix}.opt.kir", print_graph(graph) + "".join(f"{n}\n" for n in notes))


def _emit_llvm(job: CompileJob):
    job.write_text(f"{job.name}.ll", job.compilation.llvm_ir)


def _emit_asm(job: CompileJob):
    job.write_text(f"{job.name}.s", job.compilation.assembly)


def _emit_obj(job: CompileJob):
    (job.stage / f"{job.name}.o").write_bytes(job.compilation.object_code)
    job.report.files.append(f"{job.name}.o")


def _emit_so(job: CompileJob):
    """The artifact folder's files (library, header, manifest, weights) straight into OUTDIR."""
    from kcompile.compiler.artifact import write_compilation
    job.planned  # the pass-level report (kernels, arena)
    built = write_compilation(job.compilation, job.stage / ".artifact")
    for f in sorted(built.iterdir()):
        os.replace(f, job.stage / f.name)
        job.report.files.append(f.name)
    built.rmdir()


def _emit_header(job: CompileJob):
    from kcompile.compiler.artifact import header
    if (job.stage / f"{job.name}.h").exists():  # --emit so wrote it already
        return
    job.write_text(f"{job.name}.h", header(job.name, job.compilation.native))


EMITTERS = {"ir": _emit_ir, "opt": _emit_opt, "llvm": _emit_llvm, "asm": _emit_asm, "obj": _emit_obj,
            "so": _emit_so, "header": _emit_header, "onnx": _emit_onnx}
