"""`kcompile MODEL -o OUTDIR`: check the options, stage the outputs, run the requested emit kinds."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kcompile.ir.atomic_files import staged_dir

from .args import EMIT_KINDS
from .emit import EMITTERS
from .errors import CLIError, describe
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
    """Each kind once, in pipeline order; the ONNX export runs beside the native kinds, after the
    traced and planned graphs are built (both sides only read them)."""
    if "onnx" not in kinds or not set(kinds) & set(NATIVE_KINDS):
        for kind in kinds:
            EMITTERS[kind](job)
        return
    job.planned
    beside = _onnx_in_child_process if _can_fork() else _onnx_in_thread
    with beside(job):
        for kind in kinds:
            if kind != "onnx":
                EMITTERS[kind](job)
    job.report.files.sort()   # the two sides appended in either order


def _can_fork() -> bool:
    """A forked child is safe only where no other thread could hold a lock at the fork."""
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods() \
        and threading.active_count() == 1


@contextlib.contextmanager
def _onnx_in_child_process(job: CompileJob):
    """The export in a forked process: `import onnx` (0.7 s of CPU, mostly ml_dtypes) and the export
    are Python that holds the GIL, as is most of codegen, so a thread overlapped only LLVM's part;
    a process runs beside all of it on a second core. The child writes into the same staging folder
    and sends back the names of its files, or its exception."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_onnx_child, args=(job, send), name="kcompile-onnx", daemon=True)
    child.start()
    send.close()
    try:
        yield
    except BaseException:
        child.terminate()
        child.join()
        raise
    try:
        outcome, value = receive.recv()
    except EOFError:
        child.join()
        raise CLIError(f"the ONNX export process ended without a result (exit status {child.exitcode})") from None
    child.join()
    if outcome == "error":
        raise value
    job.report.files += value


def _onnx_child(job: CompileJob, send) -> None:
    before = len(job.report.files)
    try:
        EMITTERS["onnx"](job)
        send.send(("ok", job.report.files[before:]))
    except BaseException as e:   # the parent raises it as if the export had run there
        try:
            send.send(("error", e))
        except Exception:        # an exception that does not pickle: its message
            send.send(("error", CLIError(describe(e))))


@contextlib.contextmanager
def _onnx_in_thread(job: CompileJob):
    """Where fork is not available or not safe: a second thread (LLVM releases the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kcompile-onnx") as pool:
        onnx = pool.submit(EMITTERS["onnx"], job)
        yield
        onnx.result()


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
