"""Pass "prepack-f32": a float32 dense weight gets a companion parameter holding it in the GEMM's B panels.

The f32 GEMM (compiler/kernels/gemm.py) multiplies by B in micro-panels of NR columns. A weight read
where it lies comes in rows of N floats (a 2 KB stride for a 784x512 kernel), and packing it per call
copies the whole matrix every call. onnxruntime packs such weights once at session load; so does
this pass: for every `matmul(x, w)` whose w is a 2-D float32 parameter (x not transposed), it adds a
parameter named packed_name(source, nr, transposed) with w already in the panel layout, and the
matmul lowering (compiler/lower/nn.py) hands that companion to the GEMM, which then streams each
panel contiguously. The plain weight stays a parameter (the batch-1 wide tile reads it, and ONNX
export, get_weights and training see only it).

The layout and the names are in ir/f32_panels.py.

The packed value is a pure function of the source weight, computed here when the graph carries
values (artifacts: weights.bin holds it); the in-process JIT packs from the arrays it is called with
(compiler/jit.py) and repacks after any in-place write of weights (ir/weight_epoch.py); a loaded
artifact repacks after set_weights and after a train_step (runtime/native.py). Parameters a
training step updates in place are never packed in that step's graph.
"""
from __future__ import annotations

from kcompile.ir import Graph, TensorType, Value
from kcompile.ir.f32_panels import packed_name, packed_size, packed_value, tile_columns

from .manager import register_pass


@register_pass("prepack-f32")
def prepack_f32(graph: Graph, lanes: int = 0) -> Graph:
    """Add a panel-packed copy of each f32 dense weight parameter (lanes: the target's f32 vector width)."""
    if lanes <= 0:
        return graph
    updated = set(graph.meta.get("param_updates", {}).values())
    have = {p.param_name for p in graph.params}
    values, added = dict(graph.param_values), []
    for node in graph.nodes:
        if node.op != "matmul" or node.attrs.get("transpose_a") or len(node.inputs) != 2:
            continue
        w = node.inputs[1]
        if (not w.is_param or w.param_name in updated or w.dtype.name != "f32" or w.type.rank != 2
                or w.type.dynamic_dims or any(isinstance(d, str) for d in w.type.shape)):
            continue
        transposed = bool(node.attrs.get("transpose_b"))
        k, n = reversed(w.type.shape) if transposed else w.type.shape
        name = packed_name(w.param_name, tile_columns(n, lanes), transposed)
        if name in have:
            continue
        have.add(name)
        added.append(Value(TensorType([packed_size(k, n, tile_columns(n, lanes))], "f32"), None, param_name=name))
        if w.param_name in graph.param_values:
            values[name] = packed_value(name, graph.param_values[w.param_name])
    if not added:
        return graph
    return Graph(graph.name, graph.inputs, list(graph.params) + added, graph.nodes, graph.outputs, values,
                 graph.output_names, graph.meta)
