"""`kcompile inspect`: a readable summary of an artifact's manifest or of a .onnx file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import CLIError


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
        terms = "".join(f"{c:,}*{'*'.join(t)} + " for t, c in e["workspace"].get("terms", []))   # T, N*T, ...
        lines.append(f"    workspace: {terms}{e['workspace']['per_batch']:,}*N + {e['workspace']['static']:,} bytes"
                     + (f"; updates {len(e['param_updates'])} parameters in place" if e.get("param_updates") else ""))
    count = sum(int(np.prod(p["shape"])) for p in m["params"])
    lines.append(f"  parameters: {len(m['params'])} tensors, {count:,} values")
    width = max((len(p["name"]) for p in m["params"]), default=0)
    lines += [f"    {p['name']:<{width}}  {p['dtype']}[{','.join(map(str, p['shape']))}] at byte {p['offset']:,}"
              for p in m["params"]]
    lines += [f"  sparse: {w['name']} {w['dtype']}[{','.join(map(str, w['shape']))}] stored as "
              f"{w['block'][0]}x{w['block'][1]} blocks in {w['values']}, {w['index']}, {w['offsets']}"
              for w in m.get("sparse_weights", [])]
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
