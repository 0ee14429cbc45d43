"""Pass "prepack-f32": a float32 dense weight gets a companion parameter holding it in the GEMM's B panels.

The f32 GEMM (compiler/kernels/gemm.py) multiplies by B in micro-panels of NR columns. A weight read
where it lies comes in rows of N floats (a 2 KB stride for a 784x512 kernel), and packing it per call
copies the whole matrix every call. onnxruntime packs such weights once at session load; so does
this pass: for every `matmul(x, w)` whose w is a 2-D float32 parameter (x not transposed), it adds a
parameter named packed_name(source, nr, transposed) with w already in the panel layout, and the
matmul lowering (compiler/lower/nn.py) hands that companion to the GEMM, which then streams each
panel contiguously. The plain weight stays a parameter (the batch-1 wide tile reads it, and ONNX
export, get_weights and training see only it).

Layout, for B the [K, N] matrix the matmul multiplies by (w, or w^T when transpose_b), NR columns
per panel and P = ceil(N / NR) panels: f32[P * K * NR], element (k, j) of panel p at
(p * K + k) * NR + j, i.e. column p * NR + j of row k; zeros past N. NR follows the kernel's tile
rule (kernels/config.gemm_shape: one vector of columns when N fits one, else two).

The packed value is a pure function of the source weight, computed here when the graph carries
values (artifacts: weights.bin holds it); the in-process JIT packs from the arrays it is called with
(compiler/jit.py) and repacks after any in-place write of weights (ir/weight_epoch.py); a loaded
artifact repacks after set_weights and after a train_step (runtime/native.py). Parameters a
training step updates in place are never packed in that step's graph.
"""
from __future__ import annotations

import re

import numpy as np

from kcompile.ir import Graph, TensorType, Value

from .manager import register_pass

_TAG = "@f32-packed"
_NAME = re.compile(rf"^(?P<source>.+){_TAG}/nr(?P<nr>\d+)(?P<t>t?)$")


def packed_name(source: str, nr: int, transposed: bool) -> str:
    return f"{source}{_TAG}/nr{nr}{'t' if transposed else ''}"


def parse_packed_name(name: str):
    """(source, nr, transposed) of a packed parameter's name, else None."""
    m = _NAME.match(name)
    return None if m is None else (m["source"], int(m["nr"]), bool(m["t"]))


def tile_columns(n: int, lanes: int) -> int:
    """NR of the f32 GEMM for N columns (compiler/kernels/config.gemm_shape's rule)."""
    return lanes if n <= lanes else 2 * lanes


def packed_size(k: int, n: int, nr: int) -> int:
    return -(-n // nr) * k * nr


def pack_weights(w: np.ndarray, nr: int, transposed: bool, out: np.ndarray | None = None) -> np.ndarray:
    """The panels (f32, 1-D) of w ([K, N], or [N, K] when transposed) in the layout above; written
    into `out` when given (a repack keeps the array the compiled code points at)."""
    b = np.asarray(w, np.float32)
    b = b.T if transposed else b
    k, n = b.shape
    panels = -(-n // nr)
    dst = np.empty(panels * k * nr, np.float32) if out is None else out
    view = dst.reshape(panels, k, nr)
    full = n // nr
    view[:full] = b[:, :full * nr].reshape(k, full, nr).transpose(1, 0, 2)
    if full < panels:
        view[full, :, :n - full * nr] = b[:, full * nr:]
        view[full, :, n - full * nr:] = 0
    return dst


def packed_value(name: str, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The value the packed parameter `name` holds for its source weight w."""
    _, nr, transposed = parse_packed_name(name)
    return pack_weights(w, nr, transposed, out)


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
