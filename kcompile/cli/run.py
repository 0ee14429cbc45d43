"""`kcompile run`: run an artifact folder (or a .onnx file through onnxruntime) on .npy inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kcompile.ir import load_budget
from kcompile.ir.atomic_files import write_atomic

from .errors import CLIError


def run_command(args) -> int:
    path = Path(args.artifact)
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be a positive integer, got {args.batch_size}")
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
            with open(file, "rb") as f:
                out.append((name or None, load_budget.read_npy(f, f"input file '{file}'")))
        except load_budget.LoadBudgetError as e:
            raise CLIError(str(e)) from None
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
        repeated = sorted({n for n in named if named.count(n) > 1})
        missing = [n for n in input_names if n not in named]
        if repeated or missing:
            raise CLIError(f"input(s) {repeated or missing} given {'more than once' if repeated else 'no --input'}; "
                           f"give each of the model's inputs {list(input_names)} once")
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
    if dest.suffix == ".npy":
        write_atomic(dest, lambda f: np.save(f, outputs[0], allow_pickle=False))
    else:
        write_atomic(dest, lambda f: np.savez(f, **dict(zip(names, outputs))))
