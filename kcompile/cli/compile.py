"""`kcompile MODEL -o OUTDIR`: check the options, stage the outputs, run the requested emit kinds."""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kcompile.ir.atomic_files import staged_dir

from .args import EMIT_KINDS
from .emit import EMITTERS
from .errors import CLIError
from .job import CompileJob
from .quantize import check_options as check_quantize_options
from .source import load_model_source


def compile_command(args) -> int:
    start = time.perf_counter()
    kinds = _parse_emit(args.emit)
    _check_option_combinations(args, kinds)
    outdir = _check_outdir(Path(args.output))
    model = load_model_source(args.model)
    with _staged(outdir) as stage:
        job = CompileJob(model, args, stage)
        job.graph  # trace first: a model that cannot be traced fails before any backend work
        _run_emitters(job, kinds)
        if job._compilation is not None:
            job.report.pass_times = list(job.compilation.timings.items())
    job.report.seconds = time.perf_counter() - start
    print("\n".join(job.report.lines(outdir)))
    return 0


NATIVE_KINDS = ("opt", "llvm", "asm", "obj", "so", "header")


def _run_emitters(job: CompileJob, kinds: list) -> None:
    """Each kind once, in pipeline order; the ONNX export runs beside the native kinds in a second
    thread: LLVM's optimizer and code generator release the GIL, so on two cores the export adds
    little wall time to `--emit so,onnx`. Both threads only read the traced and planned graphs,
    which are built first."""
    if "onnx" not in kinds or not set(kinds) & set(NATIVE_KINDS):
        for kind in kinds:
            EMITTERS[kind](job)
        return
    job.planned
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kcompile-onnx") as pool:
        onnx = pool.submit(EMITTERS["onnx"], job)
        for kind in kinds:
            if kind != "onnx":
                EMITTERS[kind](job)
        onnx.result()
    job.report.files.sort()   # the two threads appended in either order


def _check_option_combinations(args, kinds):
    """Options that would otherwise be silently ignored are errors."""
    check_quantize_options(args)
    if args.batch is not None and args.batch < 1:
        raise CLIError(f"--batch must be a positive integer, got {args.batch}")
    if args.opset is not None and "onnx" not in kinds:
        raise CLIError("--opset applies to --emit onnx only")
    if (args.optimizer or args.loss) and not args.train:
        raise CLIError("--optimizer and --loss configure --train; add --train")
    native = set(NATIVE_KINDS)
    if args.sparse is not None and not native & set(kinds):
        raise CLIError("--sparse chooses native kernels; add --emit so (or another native kind): ONNX always "
                       "stores dense kernels, zeros included")
    if args.sparse == "always" and args.train:
        raise CLIError("--sparse always cannot apply with --train: the training step changes the kernels, so "
                       "their zeros are not fixed (training artifacts keep dense kernels)")
    if (args.passes or args.print_ir_after_all or args.verify_each) and not native & set(kinds):
        raise CLIError("--passes, --print-ir-after-all and --verify-each act on the native pipeline; "
                       "add --emit opt (or another native kind)")


def _parse_emit(values) -> list:
    kinds = []
    for value in values or ["so"]:
        for kind in filter(None, value.split(",")):
            if kind not in EMIT_KINDS:
                raise CLIError(f"unknown --emit kind '{kind}'; choose from {', '.join(EMIT_KINDS)}")
            if kind not in kinds:
                kinds.append(kind)
    return sorted(kinds, key=list(EMIT_KINDS).index)  # pipeline order: so writes the header before "header"


def _check_outdir(outdir: Path) -> Path:
    if outdir.exists() and not outdir.is_dir():
        raise CLIError(f"output '{outdir}' exists and is not a folder")
    if not outdir.parent.resolve().is_dir():
        raise CLIError(f"the folder '{outdir.parent}' for the output does not exist")
    return outdir


@contextlib.contextmanager
def _staged(outdir: Path):
    """A staging folder beside OUTDIR that replaces it in one step only if the block succeeds; files of
    OUTDIR this compile does not write are carried over (hard links), so the swap changes only ours."""
    with staged_dir(outdir) as stage:
        yield stage
        if outdir.is_dir():
            _carry_over(outdir, stage)


def _carry_over(old: Path, new: Path) -> None:
    for entry in old.iterdir():
        target = new / entry.name
        if os.path.lexists(target):
            continue
        if entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
