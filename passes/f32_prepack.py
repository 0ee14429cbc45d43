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

from kcompile.ir import Graph, TensorType
from kcompile.ir.f32_panels import packed_name, packed_size, packed_value, tile_columns

from .manager import register_pass
from .packed_params import with_packed_params


@register_pass("prepack-f32")
def prepack_f32(graph: Graph, lanes: int = 0) -> Graph:
    """Add a panel-packed copy of each f32 dense weight parameter (lanes: the target's f32 vector width)."""
    if lanes <= 0:
        return graph

    def companion(node):
        if node.op != "matmul" or node.attrs.get("transpose_a") or len(node.inputs) != 2:
            return None
        w = node.inputs[1]
        if not w.is_param or w.dtype.name != "f32" or w.type.rank != 2 or any(isinstance(d, str) for d in w.type.shape):
            return None
        transposed = bool(node.attrs.get("transpose_b"))
        k, n = reversed(w.type.shape) if transposed else w.type.shape
        nr = tile_columns(n, lanes)
        return w, packed_name(w.param_name, nr, transposed), TensorType([packed_size(k, n, nr)], "f32"), packed_value

    return with_packed_params(graph, companion)
