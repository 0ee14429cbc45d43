"""AOT artifacts: a directory with the shared library, a C header, manifest.json and weights.bin.

Written atomically: everything goes to a sibling staging folder that replaces the output in one
step only when complete (ir.atomic_files), so a failed or killed compile leaves the old artifact or
the new one, and the next write cleans up what a killed one left. Where no
C compiler/linker exists, the object file is kept instead and the runtime loads it with llvmlite.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import llvmlite
import numpy as np

from kcompile.ir import Graph
from kcompile.ir.atomic_files import staged_dir

from .disk_cache import DiskCache
from .driver import COMPILER_VERSION, Compilation, CompileOptions
from .lower.context import STATUS_BAD_SHAPE

FORMAT = "kcompile-artifact"
FORMAT_VERSION = 1
LAUNCH_SYMBOL = "kc_parallel_launch"  # see compiler/threads.py: the runtime binds its thread pool here


def write_artifact(graph: Graph, outdir, name: str, train_step: Graph | None = None, opt_level: int = 3,
                   linker: str | None = "cc", sparse: str = "auto") -> Path:
    """Compile `graph` (and optionally its training step) into the artifact directory `outdir`.

    train_step: a graph whose meta["param_updates"] ({output name: parameter name}) says which of
    its outputs are the new parameter values; the entry point writes those into the parameter block.
    linker: the C compiler driver used to link (None: keep the object file, no linking).
    sparse: sparsify mode (auto | always | never; see passes/sparsify.py). A training artifact keeps
    its kernels dense (its train step changes them): there auto means never and always is refused.
    """
    entries = {"forward": graph} | ({"train_step": train_step} if train_step is not None else {})
    options = CompileOptions(opt_level=opt_level, sparse=sparse_mode(sparse, train_step is not None))
    return write_compilation(Compilation(entries, name, options, linker, DiskCache.from_environment()), outdir)


def sparse_mode(sparse: str, training: bool) -> str:
    """The sparsify mode an artifact compiles with: kernels a training step updates stay dense."""
    if training and sparse == "always":
        raise ValueError("sparse='always' cannot apply to an artifact with a training step: the step updates the "
                         "kernels in place, so their zeros are not fixed; compile the training artifact dense")
    return "never" if training else sparse


def write_compilation(compilation: Compilation, outdir) -> Path:
    """Write the artifact of a compilation (its object code, linked when it can be) into `outdir`."""
    outdir = Path(outdir)
    if outdir.is_symlink() or (outdir.exists() and not outdir.is_dir()):
        raise FileExistsError(f"{outdir} exists and is not an artifact directory")
    outdir.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(outdir) as stage:
        _write_files(stage, compilation)
    return outdir


def _write_files(tmp: Path, compilation: Compilation):
    """Everything but the rename: weights, code (linked or object), header, manifest."""
    name, native = compilation.name, compilation.native
    weights = _weights_block(native.params, compilation.planned)  # planned: sparse kernels as stored
    (tmp / "weights.bin").write_bytes(weights)
    so = compilation.shared_library
    if so is not None:
        (tmp / f"lib{name}.so").write_bytes(so)
        code = {"library": f"lib{name}.so", "object": None}
    else:
        (tmp / f"{name}.o").write_bytes(compilation.object_code)
        code = {"library": None, "object": f"{name}.o"}
    (tmp / f"{name}.h").write_text(header(name, native))
    manifest = _manifest(compilation, code, tmp, weights)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _weights_block(slots, entries: dict) -> bytes:
    values = {}
    for g in entries.values():
        values.update(g.param_values)
    size = max((s.offset + s.nbytes for s in slots), default=0)
    block = bytearray(size)
    for s in slots:
        if s.name not in values:
            raise ValueError(f"parameter '{s.name}' has no value to write into weights.bin")
        a = np.ascontiguousarray(values[s.name], dtype=s.dtype.np.newbyteorder("<"))
        block[s.offset:s.offset + s.nbytes] = a.tobytes()
    return bytes(block)


def _manifest(compilation: Compilation, code, tmp: Path, weights: bytes) -> dict:
    name, native, target = compilation.name, compilation.native, compilation.target
    files = {k: v for k, v in code.items() if v}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "compiler": {"name": "kcompile", "version": COMPILER_VERSION, "llvmlite": llvmlite.__version__,
                     "opt_level": compilation.options.opt_level},
        **code,
        "sha256": {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in files.values()}
        | {"weights.bin": hashlib.sha256(weights).hexdigest()},
        "header": f"{name}.h",
        "target": {"triple": target.triple, "cpu": target.cpu, "features": target.enabled_features},
        "entry_points": native.interface()["entry_points"],
        "params": native.interface()["params"],
        **({"sparse_weights": native.sparse_weights} if native.sparse_weights else {}),
        "abi_symbol": native.abi_symbol,
        "weights": {"file": "weights.bin", "nbytes": len(weights)},
        "status_codes": {str(k): v for k, v in native.status_messages.items()},
        "thread_launcher": LAUNCH_SYMBOL if LAUNCH_SYMBOL in native.ir_text else None,
        "libraries": sorted(native.libraries),
        "compile_seconds": {k: round(v, 6) for k, v in compilation.timings.items()},
    }


def header(name: str, native) -> str:
    """The C header declaring the entry points, with the tensor signature as comments."""
    guard = f"KC_{name.upper()}_H"
    lines = [f"/* Generated by kcompile {COMPILER_VERSION}: model '{name}'. */", f"#ifndef {guard}",
             f"#define {guard}", "#include <stdint.h>", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
             "/* Buffers are C-contiguous; params is the weights.bin block (64-byte aligned), workspace must",
             " * hold <entry>_workspace_size(batch[, input_shapes]) bytes (64-byte aligned). Returns 0 on success. */",
             f"#define {name.upper()}_PARAM_BYTES {max((s.offset + s.nbytes for s in native.params), default=0)}"]
    for kind, spec in native.interface()["entry_points"].items():
        lines.append("")
        for io in ("inputs", "outputs"):
            for k, t in enumerate(spec[io]):
                lines.append(f"/*   {io[:-1]} {k}: {t['name']} {t['dtype']}[{','.join(map(str, t['shape']))}] */")
        if "symbols" in spec:
            lines += _dynamic_prototypes(name, kind, spec)
            continue
        lines.append(f"int32_t {spec['symbol']}(const void *const *inputs, void *const *outputs, void *params,")
        lines.append("        void *workspace, int64_t batch, int32_t nthreads);")
        lines.append("/* The same, with one pointer per parameter (manifest order) instead of the block: */")
        lines.append(f"int32_t {spec['symbol']}_p(const void *const *inputs, void *const *outputs,")
        lines.append("        void *const *params, void *workspace, int64_t batch, int32_t nthreads);")
        lines.append("/* Both with the six arguments in one array {inputs, outputs, params, workspace, batch, nthreads}: */")
        lines.append(f"int32_t {spec['symbol']}_packed(const int64_t *args);")
        lines.append(f"int32_t {spec['symbol']}_p_packed(const int64_t *args);")
        lines.append(f"int64_t {spec['workspace_symbol']}(int64_t batch);")
    lines += ["", "#ifdef __cplusplus", "}", "#endif", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


def _dynamic_prototypes(name: str, kind: str, spec: dict) -> list:
    """An entry with dynamic dims (a sequence length T) takes every input's shape; the code reads T
    from it and checks all of it (batch, static dims, one T per symbol, T >= 1), else returns
    KC_STATUS_BAD_SHAPE and runs nothing."""
    ranks = [len(t["shape"]) for t in spec["inputs"]]
    where = "; ".join(f"{sym} = input {k} dim {axis}" for sym, places in spec["symbols"].items()
                      for k, axis in places)
    terms = " + ".join(f"{c}*{'*'.join(t)}" for t, c in spec["workspace"]["terms"])
    macro = f"{name.upper()}_{kind.upper()}"
    return [f"/* Dynamic dims: {where}. input_shapes: every input's dims, in input order ({sum(ranks)} values). */",
            f"#define {macro}_INPUT_SHAPE_LEN {max(1, sum(ranks))}",
            "#ifndef KC_STATUS_BAD_SHAPE",
            f"#define KC_STATUS_BAD_SHAPE {STATUS_BAD_SHAPE}",
            "#endif",
            f"int32_t {spec['symbol']}(const void *const *inputs, void *const *outputs, void *params,",
            "        void *workspace, int64_t batch, int32_t nthreads, const int64_t *input_shapes);",
            "/* The same, with one pointer per parameter (manifest order) instead of the block: */",
            f"int32_t {spec['symbol']}_p(const void *const *inputs, void *const *outputs, void *const *params,",
            "        void *workspace, int64_t batch, int32_t nthreads, const int64_t *input_shapes);",
            f"/* {spec['workspace']['per_batch']}*N + {spec['workspace']['static']}" + (f" + {terms}" if terms else "")
            + " bytes; -1 when input_shapes disagree with the signature: */",
            f"int64_t {spec['workspace_symbol']}(int64_t batch, const int64_t *input_shapes);"]
