"""Export an IR graph to ONNX: standard ops (opset 18 by default, 18-21 accepted), weights as
initializers, the batch symbol N as a dim_param, names taken from the graph; written atomically.

The op-by-op mapping lives in compiler/onnx_ops (a table keyed by IR op name, like the other
concerns). Every exported file passes `onnx.checker.check_model(full_check=True)` before it
appears at its destination.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from importlib import metadata
from pathlib import Path

import onnx
from onnx import helper, numpy_helper

from kcompile.ir import Graph, verify
from kcompile.ir.atomic_files import clean_stale, sibling

from .onnx_ops import EMITTERS, UNSUPPORTED, EmitContext, UnsupportedOpError
from .onnx_ops.context import value_info

DEFAULT_OPSET = 18
SUPPORTED_OPSETS = range(18, 22)
# Models whose weights exceed this many bytes keep their tensors in "<file>.<token>.data" beside the model
# (ONNX external data, relative location); protobuf cannot hold a file over 2 GiB.
DEFAULT_EXTERNAL_DATA_THRESHOLD = 512 * 1024 * 1024
EXTERNAL_TENSOR_MIN_BYTES = 1024  # smaller tensors stay inline even in external-data models

__all__ = ["export_onnx", "to_onnx_model", "UnsupportedOpError", "DEFAULT_OPSET", "SUPPORTED_OPSETS"]


def export_onnx(graph: Graph, path, opset: int = DEFAULT_OPSET,
                external_data_threshold: int | None = DEFAULT_EXTERNAL_DATA_THRESHOLD,
                batch: int | None = None) -> Path:
    """Write `graph` as an ONNX model at `path` (checked, atomic); returns the path.

    external_data_threshold: weights above this total size (bytes) go to "<name>.<token>.data" beside the
    model; None keeps everything in one file. batch: fix the batch dimension (default: symbolic N).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"ONNX export: {path} is a directory; give a file path such as {path / 'model.onnx'}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"ONNX export: the folder {path.parent} does not exist")
    model = to_onnx_model(graph, opset, batch)
    external = external_data_threshold is not None and _weight_bytes(model) > external_data_threshold
    _write_atomically(model, path, external)
    return path


def to_onnx_model(graph: Graph, opset: int = DEFAULT_OPSET, batch: int | None = None) -> onnx.ModelProto:
    """The ONNX model of `graph` in memory (all weights inline)."""
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f"ONNX export: opset {opset} is not supported; use {SUPPORTED_OPSETS.start}.."
                         f"{SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"ONNX export: batch must be a positive int, got {batch!r}")
    verify(graph)
    _check_exportable(graph)
    ctx = EmitContext(graph, opset, batch)
    inputs, initializers = _bind_leaves(ctx, graph)
    planned = _plan_output_names(ctx, graph)
    for i, node in enumerate(graph.nodes):
        _emit_node(ctx, node, i, planned)
    outputs = _bind_outputs(ctx, graph, planned)
    onnx_graph = helper.make_graph(ctx.nodes, graph.name, inputs, outputs, initializers + ctx.initializers,
                                   value_info=_intermediate_types(ctx, graph))
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="kcompile",
                              producer_version=_version(), doc_string=f"kcompile graph @{graph.name}")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    return model


def _check_exportable(graph: Graph):
    """Refuse, naming every culprit, graphs with ops that have no faithful ONNX form."""
    problems = []
    for node in graph.nodes:
        if node.op in UNSUPPORTED:
            problems.append(f"{node.where()}: op '{node.op}' cannot be exported to ONNX: {UNSUPPORTED[node.op]}")
        elif node.op not in EMITTERS:
            problems.append(f"{node.where()}: op '{node.op}' has no ONNX mapping")
    missing = [p.param_name for p in graph.params if p.param_name not in graph.param_values]
    if missing:
        problems.append(f"parameters {missing} have no values to store as ONNX initializers")
    if problems:
        raise UnsupportedOpError(f"ONNX export of graph @{graph.name}: " + "; ".join(dict.fromkeys(problems)))


def _bind_leaves(ctx: EmitContext, graph: Graph):
    inputs = []
    for v in graph.inputs:
        ctx.names[v] = ctx.reserve(v.name)
        inputs.append(value_info(v.name, v.type, ctx.batch))
    initializers = []
    for p in graph.params:
        ctx.names[p] = ctx.reserve(p.param_name)
        initializers.append(numpy_helper.from_array(graph.param_values[p.param_name], p.param_name))
    return inputs, initializers


def _plan_output_names(ctx: EmitContext, graph: Graph) -> dict:
    """Node results that are graph outputs take the output's name (the first time they appear)."""
    planned = {}
    for v, name in zip(graph.outputs, graph.output_names):
        ctx.reserve(name)
        if v.producer is not None and v not in planned:
            planned[v] = name
    return planned


def _emit_node(ctx: EmitContext, node, index: int, planned: dict):
    ctx.set_label(f"{node.name or node.op}#{index}")
    ins = [ctx.name(v) for v in node.inputs]
    outs = [planned.get(v) or ctx.fresh(v.name or f"{node.name or node.op}#{index}") for v in node.outputs]
    for v, n in zip(node.outputs, outs):
        ctx.names[v] = n
    EMITTERS[node.op](ctx, node, ins, outs)


def _bind_outputs(ctx: EmitContext, graph: Graph, planned: dict):
    outputs = []
    for v, name in zip(graph.outputs, graph.output_names):
        if planned.get(v) != name:  # an input, a parameter or a repeated value: copy it out
            ctx.set_label("outputs")
            ctx.emit("Identity", [ctx.name(v)], out=name)
        outputs.append(value_info(name, v.type, ctx.batch))
    return outputs


def _intermediate_types(ctx: EmitContext, graph: Graph):
    """Declared types of every intermediate IR value: strict shape inference cross-checks them."""
    outs = set(graph.outputs)
    return [value_info(ctx.name(v), v.type, ctx.batch) for n in graph.nodes for v in n.outputs if v not in outs]


def subgraph(outer: EmitContext, region: Graph, captured: dict) -> onnx.GraphProto:
    """A region as an ONNX subgraph (a Scan body); `captured` maps region inputs to outer tensor names."""
    ctx = EmitContext(region, outer.opset, outer.batch, used=outer._used)
    inputs = []
    for v in region.inputs:
        ctx.names[v] = captured.get(v) or ctx.fresh(f"{region.name}/{v.name}")
        if v not in captured:
            inputs.append(value_info(ctx.names[v], v.type, ctx.batch))
    out_names = [ctx.fresh(f"{region.name}/{name}") for name in region.output_names]
    planned = {}
    for v, name in zip(region.outputs, out_names):
        if v.producer is not None and v not in planned:
            planned[v] = name
    for i, node in enumerate(region.nodes):
        _emit_node(ctx, node, i, planned)
    outputs = []
    for v, name in zip(region.outputs, out_names):
        if planned.get(v) != name:
            ctx.emit("Identity", [ctx.name(v)], out=name)
        outputs.append(value_info(name, v.type, ctx.batch))
    return helper.make_graph(ctx.nodes, region.name, inputs, outputs, ctx.initializers,
                             value_info=_intermediate_types(ctx, region))


def _weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of tensor data: initializers and Constant nodes' values."""
    constants = [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    return sum(len(t.raw_data) for t in list(model.graph.initializer) + constants)


def _write_atomically(model: onnx.ModelProto, path: Path, external: bool):
    """Write and check in a staging folder beside `path`, then rename into place (the staging folders
    killed exports left are removed first). External data goes to a file named for this export
    ("NAME.onnx.<token>.data"), renamed in before the model: until the model's rename the old model
    still names its own data file, so a reader never pairs a model with another export's weights.
    Data files of earlier exports are removed after the model's rename."""
    clean_stale(path)
    tmp = sibling(path, "stage")
    os.mkdir(tmp)
    try:
        data_name = f"{path.name}.{secrets.token_hex(6)}.data"
        tmp_model = tmp / path.name
        onnx.save_model(model, str(tmp_model), save_as_external_data=external, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=EXTERNAL_TENSOR_MIN_BYTES, convert_attribute=True)
        onnx.checker.check_model(str(tmp_model), full_check=True)
        if external:
            os.replace(tmp / data_name, path.parent / data_name)
        os.replace(tmp_model, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_old_data_files(path, keep=data_name if external else None)


def _remove_old_data_files(path: Path, keep: str | None):
    """Remove the external-data files earlier exports to `path` wrote (this release's
    "NAME.<token>.data" and the older "NAME.data"), except `keep`."""
    pattern = re.compile(re.escape(path.name) + r"(\.[0-9a-f]{12})?\.data")
    for name in os.listdir(path.parent):
        if name != keep and pattern.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


def _version() -> str:
    try:
        return metadata.version("kcompile")
    except metadata.PackageNotFoundError:
        return "unknown"
