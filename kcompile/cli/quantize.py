"""--quantize int8: calibrate the traced graph on --calibration-data and run the quantize-int8 pass."""
from __future__ import annotations

from pathlib import Path

from .errors import CLIError


def check_options(args):
    """--quantize needs --calibration-data, and both need each other; --train is float only."""
    if args.quantize is None:
        if args.calibration_data or args.calibration_method:
            raise CLIError("--calibration-data and --calibration-method configure --quantize; add --quantize int8")
        return
    if not args.calibration_data:
        raise CLIError("--quantize int8 needs --calibration-data FILE.npy (samples of the model's inputs)")
    if args.train:
        raise CLIError("--quantize compiles int8 inference; it does not combine with --train")


def quantize_graph(graph, args, report):
    """The int8 graph of `graph` (calibrated on args.calibration_data); the report notes its layers and bytes."""
    from kcompile.compiler.calibrate import CalibrationError, calibrate
    from kcompile.passes.quantize import quantize_int8
    if any(n.op in ("quantize", "matmul_integer", "conv2d_integer") for n in graph.nodes):
        raise CLIError("--quantize: the model is already quantized; compile it without --quantize")
    data = load_calibration_data(Path(args.calibration_data), graph)
    try:
        ranges = calibrate(graph, data, args.calibration_method or "minmax")
    except CalibrationError as e:
        raise CLIError(f"--calibration-data {args.calibration_data}: {e}") from None
    out = quantize_int8(graph, ranges)
    report.quantization = dict(out.meta["quantization"], method=args.calibration_method or "minmax")
    return out


def load_calibration_data(path: Path, graph):
    """A .npy array (one input) or a .npz archive of arrays named as the model's inputs."""
    if not path.is_file():
        raise CLIError(f"--calibration-data: no such file '{path}'")
    from kcompile.ir import load_budget
    try:
        return load_budget.load_npy_or_npz(path, f"--calibration-data {path}")
    except load_budget.LoadBudgetError as e:
        raise CLIError(str(e)) from None
    except (ValueError, OSError, EOFError) as e:
        raise CLIError(f"--calibration-data {path}: not a NumPy .npy/.npz file of plain arrays ({e})") from None


def report_lines(q: dict) -> list:
    floats = ", ".join(f"{f['layer']} ({f['reason']})" for f in q["float"]) or "none"
    before, after = q["weight_bytes_before"], q["weight_bytes_after"]
    return [f"  quantization: int8 ({q['method']} calibration)",
            f"    layers in int8: {', '.join(q['int8']) or 'none'}",
            f"    layers in float: {floats}",
            f"    weight bytes: {before:,} -> {after:,} ({before / max(after, 1):.2f}x smaller)"]
