"""The kcompile command line: compile a model into artifacts, run an artifact, inspect one.

    kcompile MODEL -o OUTDIR [--emit KIND ...]     compile (MODEL: a saved model or a .py file)
    kcompile run ARTIFACT --input x.npy [--output y.npy]
    kcompile inspect ARTIFACT

Every error is one line on stderr and a non-zero exit status (set KCOMPILE_TRACEBACK=1 for the
traceback). Outputs are staged in a temporary folder beside OUTDIR and moved in only once every
requested kind was produced, so a failed compile leaves nothing behind.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import kcompile

EMIT_KINDS = {
    "ir": "the traced IR as text (NAME.kir), which kcompile.ir.parse_graph reads back",
    "opt": "the IR after the pass pipeline (NAME.opt.kir)",
    "llvm": "LLVM IR of the generated code (NAME.ll)",
    "asm": "assembly for the target (NAME.s)",
    "obj": "the object file (NAME.o)",
    "so": "the native artifact: shared library, C header, manifest and weights (the default)",
    "header": "the C header declaring the entry points (NAME.h)",
    "onnx": "an ONNX model of the inference graph (NAME.onnx; with --train also NAME.train_step.onnx)",
}
SUBCOMMANDS = ("run", "inspect")


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "run":
            return run_command(_run_parser().parse_args(argv[1:]))
        if argv and argv[0] == "inspect":
            return inspect_command(_inspect_parser().parse_args(argv[1:]))
        return compile_command(_compile_parser().parse_args(argv))
    except SystemExit as e:  # argparse: --help, --version, or a usage error it already printed
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        return _fail("interrupted", status=130)
    except BrokenPipeError:  # the reader (say, `| head`) left: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as e:  # every failure is one clear line; the traceback only on request
        if os.environ.get("KCOMPILE_TRACEBACK"):
            raise
        return _fail(_describe(e))


def _fail(message: str, status: int = 1) -> int:
    print(f"kcompile: error: {message}", file=sys.stderr)
    return status


def _describe(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, CLIError) else f"{type(e).__name__}: {text}"


# == compile ==================================================================================
@dataclass
class Report:
    """What the compile report prints: pass timings, kernels, arena, parameters, files."""
    pass_times: list = field(default_factory=list)   # (pass name, seconds)
    kernel_count: int | None = None
    arena: str | None = None                          # workspace bytes as a function of the batch N
    param_count: int = 0
    files: list = field(default_factory=list)
    seconds: float = 0.0

    def note_plans(self, planned: dict):
        """Kernel count and arena size from the fused, memory-planned graphs."""
        from kcompile.passes.fusion import schedule
        self.kernel_count = sum(len(schedule(g)) for g in planned.values())
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
        for name, secs in self.pass_times:
            out.append(f"  {name:<32} {secs * 1e3:9.2f} ms")
        return out


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
            self.report.param_count = sum(int(np.prod(p.type.shape)) for p in self._graph.params)
        return self._graph

    def write_text(self, filename: str, text: str):
        (self.stage / filename).write_text(text)
        if filename not in self.report.files:
            self.report.files.append(filename)


def compile_command(args) -> int:
    start = time.perf_counter()
    kinds = _parse_emit(args.emit)
    _check_option_combinations(args, kinds)
    outdir = _check_outdir(Path(args.output))
    model = load_model_source(args.model)
    with _staged(outdir) as stage:
        job = CompileJob(model, args, stage)
        job.graph  # trace first: a model that cannot be traced fails before any backend work
        for kind in kinds:
            EMITTERS[kind](job)
    job.report.seconds = time.perf_counter() - start
    print("\n".join(job.report.lines(outdir)))
    return 0


def _check_option_combinations(args, kinds):
    """Options that would otherwise be silently ignored are errors."""
    if args.batch is not None and args.batch < 1:
        raise CLIError(f"--batch must be a positive integer, got {args.batch}")
    if args.opset is not None and "onnx" not in kinds:
        raise CLIError("--opset applies to --emit onnx only")
    if (args.optimizer or args.loss) and not args.train:
        raise CLIError("--optimizer and --loss configure --train; add --train")
    native = {"opt", "llvm", "asm", "obj", "so", "header"}
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


def load_model_source(path_text: str):
    """The model in MODEL: a saved model (loaded without running code) or a Python file's model."""
    path = Path(path_text)
    if not path.exists():
        raise CLIError(f"model '{path}' does not exist")
    if path.suffix == ".py":
        return _model_from_python(path)
    return kcompile.models.load_model(str(path))  # a JSON config and weights: no code runs


def _model_from_python(path: Path):
    # Not "__main__": the file's `if __name__ == "__main__":` block (say, training) does not run.
    # Its folder leads sys.path meanwhile, as with `python file.py`, so its sibling imports work.
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        namespace = runpy.run_path(str(path), run_name="__kcompile_model__")
    except SystemExit as e:  # not argparse's exit: the model file itself stopped
        raise CLIError(f"'{path}' exited (status {e.code}) instead of defining a model") from None
    finally:
        sys.path.remove(folder)
    if "model" in namespace:
        return namespace["model"]
    if callable(namespace.get("build_model")):
        return namespace["build_model"]()
    raise CLIError(f"'{path}' defines neither a `model` object nor a `build_model()` function")


def forward_graph(model):
    """The inference graph of a front-end model (or of an ir.Graph given directly)."""
    from kcompile.ir import Graph
    if isinstance(model, Graph):
        return model
    trace = getattr(model, "forward_graph", None)
    if not callable(trace):
        raise CLIError(f"the model is a {type(model).__name__}, neither a kcompile model nor a kcompile.ir.Graph")
    return trace()


def _check_outdir(outdir: Path) -> Path:
    if outdir.exists() and not outdir.is_dir():
        raise CLIError(f"output '{outdir}' exists and is not a folder")
    if not outdir.parent.resolve().is_dir():
        raise CLIError(f"the folder '{outdir.parent}' for the output does not exist")
    return outdir


@contextlib.contextmanager
def _staged(outdir: Path):
    """A temporary folder beside OUTDIR whose entries move into OUTDIR only if the block succeeds."""
    stage = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".partial", dir=outdir.parent.resolve()))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; OUTDIR gets the usual permissions
    try:
        yield stage
        if not outdir.exists():
            os.rename(stage, outdir)
            return
        for entry in stage.iterdir():
            target = outdir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# -- the emit kinds ------------------------------------------------------------------------
def _emit_ir(job: CompileJob):
    from kcompile.ir import print_graph
    job.write_text(f"{job.name}.kir", print_graph(job.graph))


def _emit_onnx(job: CompileJob):
    """NAME.onnx (inference); with --train also NAME.train_step.onnx, whose "update:*" outputs are
    the new parameter values."""
    from kcompile.compiler.onnx_export import DEFAULT_OPSET, export_onnx
    graphs = {"": job.graph} | ({".train_step": _entries(job)["train_step"]} if job.args.train else {})
    for suffix, graph in graphs.items():
        filename = f"{job.name}{suffix}.onnx"
        export_onnx(graph, job.stage / filename, opset=job.args.opset or DEFAULT_OPSET, batch=job.args.batch)
        job.report.files += sorted(p.name for p in job.stage.iterdir() if p.name.startswith(filename))


def _emit_opt(job: CompileJob):
    """The planned IR, followed by the fusion and memory decisions as // comments (it still parses)."""
    from kcompile.ir import print_graph
    from kcompile.passes.fusion import format_fusion
    from kcompile.passes.memory import format_memory
    for kind, graph in _planned(job).items():
        suffix = "" if kind == "forward" else f".{kind}"
        notes = [n for n in (format_fusion(graph) if "fusion" in graph.meta else "", format_memory(graph)) if n]
        job.write_text(f"{job.name}{suffix}.opt.kir", print_graph(graph) + "".join(f"{n}\n" for n in notes))


def _emit_llvm(job: CompileJob):
    job.write_text(f"{job.name}.ll", _library(job).optimized_ir())


def _emit_asm(job: CompileJob):
    job.write_text(f"{job.name}.s", _library(job).emit_assembly())


def _emit_obj(job: CompileJob):
    (job.stage / f"{job.name}.o").write_bytes(_library(job).emit_object())
    job.report.files.append(f"{job.name}.o")


def _entries(job: CompileJob) -> dict:
    """Entry kind -> graph: the forward pass, and the training step with --train (--batch applied)."""
    if job.entries is None:
        entries = {"forward": job.graph}
        if job.args.train:
            entries["train_step"] = train_step_graph(job.model, job.args.optimizer, job.args.loss)
        if job.args.batch is not None:
            entries = {kind: specialize_batch(g, job.args.batch) for kind, g in entries.items()}
        job.entries = entries
    return job.entries


def specialize_batch(graph, batch: int):
    """The same graph with the batch symbol N replaced by `batch` everywhere (types and attributes)."""
    from kcompile.ir import GraphBuilder, TensorType
    b = GraphBuilder(graph.name)
    b.meta = dict(graph.meta)
    env = {v: b.input(v.name, TensorType(v.type.concrete_shape(batch), v.type.dtype)) for v in graph.inputs}
    env.update({p: b.param(p.param_name, graph.param_values.get(p.param_name), type=p.type) for p in graph.params})
    for node in graph.nodes:
        attrs = {k: _fix_batch(v, batch) for k, v in node.attrs.items()}
        out = b.op(node.op, *[env[v] for v in node.inputs], name=node.name, **attrs)
        env.update(zip(node.outputs, out if isinstance(out, tuple) else (out,)))
    return b.build([env[v] for v in graph.outputs], graph.output_names)


def _fix_batch(value, batch):
    if isinstance(value, tuple) and any(isinstance(d, str) for d in value):
        return tuple(batch if isinstance(d, str) else d for d in value)
    return value


def train_step_graph(model, optimizer: str | None, loss: str | None):
    """The front end's training step (forward, loss, gradients, update), with its in-place updates marked.

    Inputs: the model's inputs, the targets "y" (f32), "__rng_counter" (i64), "__learning_rate" and
    "__iterations" (f32); outputs: "loss" and "pred:..."; parameters and optimizer slots update in place.
    """
    from kcompile.ir import Graph
    if isinstance(model, Graph) or not hasattr(model, "compile"):
        raise CLIError("--train needs a kcompile model (a bare ir.Graph has no loss or optimizer)")
    compiled = getattr(model, "_compiled", None)
    if loss or optimizer:
        if loss is None and compiled is None:
            raise CLIError("--train: the model has no training configuration; give --loss (and --optimizer)")
        model.compile(optimizer=optimizer or (compiled.optimizer if compiled else "rmsprop"),
                      loss=loss or compiled.losses)
    elif compiled is None:
        raise CLIError("--train: the model has no training configuration (it was never compiled); "
                       "give --loss and --optimizer")
    from kcompile.frontend.training.train_step import build_train_step, output_types
    compiled = model._compiled
    y_types = [None if fn is None else _target_type(fn, t) for fn, t in zip(compiled.losses, output_types(model))]
    graph = build_train_step(model, compiled, y_types, False).graph
    updates = {n: n.split(":", 1)[1] for n in graph.output_names if n.startswith("update:")}
    return Graph(graph.name, graph.inputs, graph.params, graph.nodes, graph.outputs, graph.param_values,
                 graph.output_names, {**graph.meta, "param_updates": updates})


def _target_type(loss, pred_type):
    """Targets as fit feeds them (float32): class indices for sparse losses, else the prediction's shape."""
    from kcompile.ir import TensorType
    sparse = "sparse" in (getattr(loss, "name", None) or type(loss).__name__).lower()
    return TensorType(("N",) if sparse else ("N",) + tuple(pred_type.shape[1:]), "f32")


def _planned(job: CompileJob) -> dict:
    """The entry graphs after the pass pipeline (-O level default, or --passes), run once."""
    if job.planned is None:
        from kcompile.compiler.driver import graph_pipeline
        from kcompile.passes.manager import PassManager
        pipeline = job.args.passes or graph_pipeline(job.args.opt_level)
        manager = PassManager(pipeline, verify_each=job.args.verify_each,
                              print_ir_after_all=job.args.print_ir_after_all, stream=sys.stderr)
        job.planned = {}
        for kind, graph in _entries(job).items():
            job.planned[kind], report = manager.run(graph)
            job.report.pass_times += [(f"{r['name']} ({kind})", r["seconds"]) for r in report["passes"]]
        job.report.note_plans(job.planned)
    return job.planned


def _native_module(job: CompileJob):
    """Generated LLVM IR of the planned entries (the driver's steps, with our pass pipeline)."""
    if job.native is None:
        from kcompile.compiler.codegen import generate
        planned = _planned(job)
        t0 = time.perf_counter()
        job.native = generate(planned, job.name, _target(job.args.target))
        job.report.pass_times.append(("lower+codegen", time.perf_counter() - t0))
    return job.native


def _library(job: CompileJob):
    """The generated code, parsed, verified and optimized by LLVM for the target."""
    if job.library is None:
        from kcompile.compiler.codelib import CodeLibrary
        native = _native_module(job)
        job.library = CodeLibrary(job.name, native.ir_text, _target(job.args.target), job.args.opt_level)
        job.library.module  # parse, verify and optimize now, so that the timings are complete
        job.report.pass_times += list(job.library.timings.items())
    return job.library


def _target(name: str):
    from kcompile.compiler.target import host_target
    if name != "host":
        raise CLIError(f"--target {name}: only 'host' (this machine) is supported; cross-compilation is not")
    return host_target()


def _emit_so(job: CompileJob):
    """The artifact folder's files (library, header, manifest, weights) straight into OUTDIR."""
    from kcompile.compiler.artifact import write_artifact
    _target(job.args.target)
    if job.args.passes:
        raise CLIError("--passes applies to --emit opt/llvm/asm/obj; the artifact is built with the -O pipeline")
    _planned(job)  # the pass-level report, checks and dumps (--verify-each, --print-ir-after-all)
    entries = _entries(job)
    built = write_artifact(entries["forward"], job.stage / ".artifact", job.name, train_step=entries.get("train_step"),
                           opt_level=job.args.opt_level)
    for f in sorted(built.iterdir()):
        os.replace(f, job.stage / f.name)
        job.report.files.append(f.name)
    built.rmdir()
    manifest = json.loads((job.stage / "manifest.json").read_text())
    # the graph passes are already in the report (from _planned); add the code generation steps
    job.report.pass_times += [(f"{k} (so)", v) for k, v in manifest.get("compile_seconds", {}).items() if "(@" not in k]


def _emit_header(job: CompileJob):
    from kcompile.compiler.artifact import header
    if (job.stage / f"{job.name}.h").exists():  # --emit so wrote it already
        return
    job.write_text(f"{job.name}.h", header(job.name, _native_module(job), _planned(job)))


EMITTERS = {"ir": _emit_ir, "opt": _emit_opt, "llvm": _emit_llvm, "asm": _emit_asm, "obj": _emit_obj,
            "so": _emit_so, "header": _emit_header, "onnx": _emit_onnx}


# == run / inspect ==============================================================================
def run_command(args) -> int:
    path = Path(args.artifact)
    if not path.exists():
        raise CLIError(f"artifact '{path}' does not exist")
    runner = _onnx_runner(path) if path.suffix == ".onnx" else _native_runner(path, args.batch_size)
    names, outputs = runner(_read_inputs(args.input))
    _write_outputs(names, outputs, args.output)
    return 0


def _read_inputs(specs) -> list:
    """(name or None, array) per --input; .npy files are read without pickle (no code runs)."""
    out = []
    for spec in specs:
        name, _, file = spec.rpartition("=") if "=" in spec else (None, "", spec)
        if not Path(file).is_file():
            raise CLIError(f"input file '{file}' does not exist")
        try:
            out.append((name or None, np.load(file, allow_pickle=False)))
        except ValueError as e:
            raise CLIError(f"input file '{file}' is not a plain .npy array ({e})") from None
    return out


def _bind(input_names, given) -> dict:
    named = [n for n, _ in given if n]
    if named and len(named) != len(given):
        raise CLIError("give every --input as NAME=FILE, or none")
    if named:
        unknown = sorted(set(named) - set(input_names))
        if unknown:
            raise CLIError(f"unknown input name(s) {unknown}; the model's inputs are {list(input_names)}")
        return dict(given)
    if len(given) != len(input_names):
        raise CLIError(f"the model takes {len(input_names)} input(s) {list(input_names)}, got {len(given)} --input")
    return {n: a for n, (_, a) in zip(input_names, given)}


def _onnx_runner(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise CLIError("running an .onnx file needs onnxruntime (pip install onnxruntime)") from None
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(given):
        feeds = _bind([i.name for i in sess.get_inputs()], given)
        return [o.name for o in sess.get_outputs()], sess.run(None, feeds)
    return run


def _native_runner(path: Path, batch_size):
    from kcompile.runtime import load
    model = load(path)
    names = [s["name"] for s in model.input_specs]

    def run(given):
        feeds = _bind(names, given)
        outs = model.predict([feeds[n] for n in names] if len(names) > 1 else feeds[names[0]], batch_size=batch_size)
        return [s["name"] for s in model.output_specs], outs if isinstance(outs, list) else [outs]
    return run


def _write_outputs(names, outputs, dest):
    if dest is None:
        for name, arr in zip(names, outputs):
            print(f"{name}: {arr.dtype}{list(arr.shape)}\n{np.array2string(arr, threshold=200)}")
        return
    dest = Path(dest)
    if dest.suffix not in (".npy", ".npz"):
        raise CLIError(f"--output must end in .npy (one output) or .npz (several), got '{dest}'")
    if dest.suffix == ".npy" and len(outputs) != 1:
        raise CLIError(f"the model has {len(outputs)} outputs {list(names)}; save them with --output FILE.npz")
    tmp = dest.with_name(f".{dest.name}.partial{dest.suffix}")
    try:
        if dest.suffix == ".npy":
            np.save(tmp, outputs[0], allow_pickle=False)
        else:
            np.savez(tmp, **dict(zip(names, outputs)))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def inspect_command(args) -> int:
    path = Path(args.artifact)
    if not path.exists():
        raise CLIError(f"artifact '{path}' does not exist")
    print("\n".join(_onnx_summary(path) if path.suffix == ".onnx" else _manifest_summary(path)))
    return 0


def _onnx_summary(path: Path) -> list:
    import onnx
    model = onnx.load(str(path), load_external_data=False)
    ops: dict = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    lines = [f"ONNX model {path.name}: graph '{model.graph.name}', producer {model.producer_name} "
             f"{model.producer_version}, opset {model.opset_import[0].version}, IR version {model.ir_version}"]
    lines += [f"  input  {_onnx_value(v)}" for v in model.graph.input]
    lines += [f"  output {_onnx_value(v)}" for v in model.graph.output]
    lines.append(f"  initializers: {len(model.graph.initializer)}; nodes: {len(model.graph.node)} "
                 f"({', '.join(f'{k} x{v}' for k, v in sorted(ops.items()))})")
    return lines


def _onnx_value(v) -> str:
    import onnx
    t = v.type.tensor_type
    dims = [d.dim_param or str(d.dim_value) for d in t.shape.dim]
    return f"{v.name}: {onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)}[{','.join(dims)}]"


def _manifest_summary(path: Path) -> list:
    manifest = path / "manifest.json" if path.is_dir() else path
    if manifest.suffix != ".json" or not manifest.is_file():
        raise CLIError(f"'{path}' is neither a .onnx file nor an artifact folder with a manifest.json")
    try:
        data = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CLIError(f"'{manifest}' is not valid JSON ({e})") from None
    if isinstance(data, dict) and data.get("format") == "kcompile-artifact":
        try:
            return _artifact_summary(path, data)
        except (KeyError, TypeError, ValueError):
            pass  # an unexpected layout: fall back to the generic listing
    return [f"artifact {path}"] + _readable(data, "  ")


def _artifact_summary(path: Path, m: dict) -> list:
    c, t = m["compiler"], m["target"]
    features = t["features"]
    lines = [f"artifact '{m['name']}' at {path} (format {m['format']} v{m['format_version']}, "
             f"kcompile {c['version']}, llvmlite {c['llvmlite']}, -O{c['opt_level']})",
             f"  code: {m.get('library') or m.get('object')}; header {m['header']}; "
             f"weights {m['weights']['file']} ({m['weights']['nbytes']:,} bytes)",
             f"  target: {t['triple']}, cpu {t['cpu']}, {len(features)} features "
             f"({', '.join(f for f in features if f.startswith(('avx', 'fma', 'neon', 'sve')))})"]
    for kind, e in m["entry_points"].items():
        sig = lambda specs: ", ".join(f"{s['name']}: {s['dtype']}[{','.join(map(str, s['shape']))}]" for s in specs)
        lines.append(f"  entry {kind}: {e['symbol']}({sig(e['inputs'])}) -> ({sig(e['outputs'])})")
        lines.append(f"    workspace: {e['workspace']['per_batch']:,}*N + {e['workspace']['static']:,} bytes"
                     + (f"; updates {len(e['param_updates'])} parameters in place" if e.get("param_updates") else ""))
    count = sum(int(np.prod(p["shape"])) for p in m["params"])
    lines.append(f"  parameters: {len(m['params'])} tensors, {count:,} values")
    width = max((len(p["name"]) for p in m["params"]), default=0)
    lines += [f"    {p['name']:<{width}}  {p['dtype']}[{','.join(map(str, p['shape']))}] at byte {p['offset']:,}"
              for p in m["params"]]
    times = m.get("compile_seconds", {})
    if times:
        lines.append("  compile: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items()))
    return lines


def _readable(data, indent: str) -> list:
    """Nested JSON as indented 'key: value' lines; short lists stay on one line."""
    lines = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        label = f"{indent}{key}:" if isinstance(data, dict) else f"{indent}-"
        if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            lines.append(f"{label} {', '.join(str(v) for v in value)}")
        elif isinstance(value, (dict, list)) and len(json.dumps(value)) > 80:
            lines.append(label)
            lines += _readable(value, indent + "  ")
        else:
            lines.append(f"{label} {json.dumps(value)}")
    return lines


# == argument parsers ===========================================================================
def _compile_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(f"  {k:<7} {v}" for k, v in EMIT_KINDS.items())
    p = argparse.ArgumentParser(
        prog="kcompile", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compile a Keras-style model ahead of time into native code or ONNX.",
        epilog=f"emit kinds:\n{kinds}\n\nother commands:\n"
               "  kcompile run ARTIFACT --input x.npy [--output y.npy]   run an artifact (or a .onnx file)\n"
               "  kcompile inspect ARTIFACT                              print an artifact's manifest\n"
               "  (kcompile run --help, kcompile inspect --help for their options)\n")
    p.add_argument("model", metavar="MODEL",
                   help="a saved kcompile model (model.save; loading it never runs code) or a .py file "
                        "defining `model` or `build_model()` (the file is executed)")
    p.add_argument("-o", "--output", metavar="OUTDIR", required=True,
                   help="output folder (created if missing; files of the same names in it are replaced)")
    p.add_argument("--emit", action="append", metavar="KIND",
                   help=f"what to write: {', '.join(EMIT_KINDS)} (repeat or comma-separate; default: so)")
    p.add_argument("--name", help="base name of the written files and the C entry points (default: the model's)")
    p.add_argument("--train", action="store_true",
                   help="also compile the training step (forward, loss, gradients, optimizer update)")
    p.add_argument("--optimizer", help="optimizer for --train when the model was not compiled with one "
                                       "(a Keras name: sgd, rmsprop, adam, ...)")
    p.add_argument("--loss", help="loss for --train when the model was not compiled with one "
                                  "(a Keras name: mse, sparse_categorical_crossentropy, ...)")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4), default=3, metavar="{0,1,2,3}",
                   help="optimization level of the pass pipeline and of LLVM (default: 3)")
    p.add_argument("--target", default="host",
                   help="target CPU: 'host' (the default: this machine's CPU and its features)")
    p.add_argument("--passes", help="comma-separated pass pipeline replacing the default one for -O")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass (to stderr)")
    p.add_argument("--verify-each", action="store_true", help="run the IR verifier after every pass")
    p.add_argument("--batch", type=int, help="specialize the compiled code and the ONNX model to this batch size")
    p.add_argument("--opset", type=int, help="ONNX opset for --emit onnx (default 18; 18-21 accepted)")
    p.add_argument("--version", action="version", version=f"kcompile {kcompile.__version__}")
    return p


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kcompile run", description="Run a compiled artifact, or a .onnx file "
                                "through onnxruntime, on inputs stored as .npy files.")
    p.add_argument("artifact", metavar="ARTIFACT", help="an artifact folder written by kcompile, or a .onnx file")
    p.add_argument("--input", action="append", required=True, metavar="[NAME=]FILE.npy",
                   help="one array per model input, in order or as NAME=FILE.npy (repeat the option)")
    p.add_argument("--output", metavar="FILE", help="save the result: FILE.npy for one output, FILE.npz for "
                                                    "several (default: print the outputs)")
    p.add_argument("--batch-size", type=int, help="run native artifacts in batches of this size")
    return p


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kcompile inspect",
                                description="Print an artifact's manifest, or a .onnx file's summary.")
    p.add_argument("artifact", metavar="ARTIFACT", help="an artifact folder written by kcompile, or a .onnx file")
    return p

