"""Pass "sparsify": matmuls/convolutions whose kernel is a parameter with zeros become sparse where it pays.

Weights are known at compile time (graph.param_values), so per kernel the pass measures density
and block structure (passes/sparse_cost.py), estimates dense and sparse run times at batch 1 and
64 rows (or at the static row count), and chooses: mode=auto takes the sparse layout when it is
estimated MIN_SPEEDUP times faster over the estimated batches (geometric mean) and at least
MIN_SPEEDUP_EACH at every one (the refitted model errs by 10-20 %, so never slower), always takes it whenever
the kernel is eligible, never leaves the graph as it is. A sparse kernel's dense parameter is
replaced by three compact ones (ir.ops.sparse.sparse_param_names), in the blocks layout or, where
vectors hold 16 f32 (AVX-512) and the cost model prefers it, the windows layout (ir/ops/sparse.py). Every decision, dense ones
included, goes to meta["sparsity"] (format_sparsity prints it); sparse nodes also carry theirs.

Eligible: a 2-D parameter with a value as the right operand of every one of its uses, each an
untransposed floating-point matmul, and not a parameter a training step updates. In a quantized
graph also an int8 parameter read only as matmul_integer's weight with a zero point of 0 (what
quantize-int8 makes: symmetric weights, so a pruned weight is an exact zero): it becomes
sparse_qmatmul (ir/ops/sparse_int8.py), weighed against the dense int8 GEMM (sparse_cost.int8_layout).
And a float conv1d/conv2d kernel (ungrouped, not causal): patches (im2col) + sparse_matmul over its
[K, COUT] view (passes/sparsify_uses.py), weighed against the dense convolution as the pipeline will
run it: with the max pool that fuse-conv-pool / fuse-int8-pool would take into its kernel (_use).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kcompile.ir import Graph, GraphBuilder
from kcompile.ir.f32_panels import parse_packed_name
from kcompile.ir.ops.sparse import from_dense, from_dense_windows, sparse_param_names

from .manager import PassError, register_pass
from .sparsify_uses import INT8_OPS, conv_use, emit_patches, float_use, fused_pool_size, int8_use, matrix_view
from .sparse_cost import ESTIMATE_BATCHES, Layout, Use, best_layout, int8_layout, structure

MODES = ("auto", "always", "never")
MIN_SPEEDUP = 1.2          # geometric mean over the estimated batches
MIN_SPEEDUP_EACH = 1.1     # at each (a pooled 288x64 convolution: 1.8x at 1 image, 1.13x at 64;
                           # measured 2.0x / 1.2-1.6x)


@dataclass(frozen=True)
class SparseDecision:
    """What the pass measured and chose for one kernel parameter."""

    param: str
    layers: tuple          # node locations using it
    shape: tuple
    density: float
    structure: str
    block: tuple
    layout: str            # "blocks" or "windows" (ir/ops/sparse.py)
    speedup: tuple         # estimated dense/sparse time at each of `rows`
    rows: tuple
    sparse: bool
    dense_bytes: int
    sparse_bytes: int
    int8: bool = False     # an int8 kernel of matmul_integer (weighed against the dense int8 GEMM)
    kernel_shape: tuple = ()   # a convolution kernel's own shape (shape is its [K, COUT] view)
    pool: int = 0          # the k x k max pool the dense convolution would take into its kernel

    def line(self) -> str:
        at = ", ".join(f"{s:.2f}x at {r} row{'s' if r > 1 else ''}" for s, r in zip(self.speedup, self.rows))
        what = "sparse" if self.sparse else "dense"
        windows = self.sparse and self.layout == "windows"
        layout = f", windows of {self.block[0]} inputs x {self.block[1]} outputs" if windows else ""
        what += " int8" if self.int8 else " convolution" if self.kernel_shape else ""
        pool = f", dense fuses the {self.pool}x{self.pool} max pool" if self.pool else ""
        return (f"{self.param} [{self.shape[0]}x{self.shape[1]}]: {what}, density {self.density:.3f}, "
                f"{self.structure}, est. {at}{pool}, {self.sparse_bytes if self.sparse else self.dense_bytes:,} bytes "
                f"(dense {self.dense_bytes:,}){layout}")


@register_pass("sparsify")
def sparsify(graph: Graph, mode: str = "auto", lanes: int = 8, int8_permute: bool = False) -> Graph:
    """Sparse matmuls for kernels with zeros, chosen by a cost model (mode=auto|always|never; lanes: f32
    vector lanes; int8_permute: the target runs the sparse int8 kernel's vpermi2b/vpdpbusd path)."""
    if mode not in MODES:
        raise PassError(f"pass 'sparsify': mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "never":
        return graph
    decisions = {name: _decide(graph, name, nodes, mode, lanes, int8_permute)
                 for name, nodes in _eligible(graph).items()}
    return _rebuild(graph, decisions)


def _eligible(graph: Graph) -> dict:
    """Parameter name -> the matmul nodes using it, for parameters that qualify (module docstring)."""
    updated = set(graph.meta.get("param_updates", {}).values())
    uses: dict = {}
    for node in graph.nodes:
        for pos, v in enumerate(node.inputs):
            if v.is_param:
                uses.setdefault(v.param_name, []).append((node, pos))
    out = {}
    for p in graph.params:
        name, t = p.param_name, p.type
        if name in updated or name not in graph.param_values or t.rank not in (2, 3, 4):
            continue
        nodes = uses.get(name, [])
        if nodes and all(float_use(n, pos) if t.dtype.is_float else int8_use(graph, n, pos) for n, pos in nodes) \
                or nodes and t.dtype.is_float and all(conv_use(n, pos) for n, pos in nodes):
            out[name] = [n for n, _ in nodes]
    return out


def _rows(nodes) -> tuple:
    """Row counts to estimate at: batch 1 and 64 times the rows per example (output positions of a
    convolution), or the static count."""
    per_item, batched = 1, False
    for d in nodes[0].outputs[0].type.shape[:-1]:
        batched |= isinstance(d, str)
        per_item *= d if isinstance(d, int) else 1
    return tuple(per_item * b for b in ESTIMATE_BATCHES) if batched else (per_item,)


def _use(graph: Graph, nodes) -> Use:
    """The work per call the cost model weighs (sparse_cost.Use): rows per estimate; a convolution's
    patches; a max pool its dense kernel would fuse, which drops the positions the pool does not read."""
    rows, conv = _rows(nodes), conv_use(nodes[0], 1)
    pool = fused_pool_size(graph, nodes[0]) if conv and len(nodes) == 1 else 0
    if not pool:
        return Use(rows, patches=conv)
    h, w = nodes[0].outputs[0].type.shape[1:3]
    kept = (h // pool * pool) * (w // pool * pool) / (h * w)
    return Use(rows, patches=True, pool=pool, dense_rows=tuple(round(r * kept) for r in rows))


def _decide(graph: Graph, name: str, nodes, mode: str, lanes: int, int8_permute: bool) -> tuple:
    kernel = np.asarray(graph.param_values[name])
    w, use = matrix_view(kernel), _use(graph, nodes)
    int8, conv, rows = nodes[0].op in INT8_OPS, conv_use(nodes[0], 1), use.rows
    layout, speedup = int8_layout(w, use, int8_permute) if int8 else best_layout(w, use, lanes)
    # an all-zero kernel is most likely a placeholder awaiting set_weights: auto keeps it dense
    sparse = mode == "always" or (layout.nnz > 0 and pays(speedup))
    d = SparseDecision(name, tuple(n.name or n.op for n in nodes), w.shape, round(layout.nnz / max(1, w.size), 4),
                       structure(w, layout), layout.block, layout.layout, speedup, rows, sparse,
                       w.size * w.dtype.itemsize, layout.nbytes(w.shape[1], w.dtype.itemsize, w.shape[0]), int8,
                       kernel.shape if conv else (), use.pool)
    return d, layout


def pays(speedup) -> bool:
    """Whether auto takes a sparse layout estimated at `speedup` (dense time / sparse time per batch)."""
    return math.prod(speedup) ** (1 / len(speedup)) >= MIN_SPEEDUP and min(speedup) >= MIN_SPEEDUP_EACH


def _rebuild(graph: Graph, decisions: dict) -> Graph:
    b = GraphBuilder(graph.name)
    b.meta = {**graph.meta, "sparsity": tuple(d for d, _ in decisions.values())}
    env = {v: b.input(v.name, v.type) for v in graph.inputs}
    compact = {}
    for p in graph.params:
        d, layout = decisions.get(p.param_name, (None, None))
        if d is not None and d.sparse:
            compact[p.param_name] = _compact_params(b, graph, p.param_name, layout)
        else:
            env[p] = b.param(p.param_name, graph.param_values.get(p.param_name), type=p.type)
    for node in graph.nodes:
        ins = [env.get(v) for v in node.inputs]
        w = node.inputs[1] if len(node.inputs) > 1 else None
        if w is not None and w.is_param and w.param_name in compact:
            d = decisions[w.param_name][0]
            windows = {"layout": "windows", "n": d.shape[1]} if d.layout == "windows" else {}
            op, extra = ("sparse_qmatmul", ins[2:3]) if d.int8 else ("sparse_matmul", [])
            x = emit_patches(b, node, ins[0], graph) if d.kernel_shape else ins[0]
            out = b.op(op, x, *compact[w.param_name], *extra, name=node.name, block=d.block, weight=d.param,
                       structure=d.structure, density=d.density, speedup=d.speedup, weight_shape=d.kernel_shape,
                       **windows)
        else:
            out = b.op(node.op, *ins, name=node.name, **node.attrs)
        env.update(zip(node.outputs, out if isinstance(out, tuple) else (out,)))
    return b.build([env[v] for v in graph.outputs], graph.output_names)


def _compact_params(b: GraphBuilder, graph: Graph, name: str, layout: Layout) -> tuple:
    taken = set(graph.param_names)
    names = sparse_param_names(name)
    clash = [n for n in names if n in taken]
    if clash:
        raise PassError(f"pass 'sparsify': parameter '{name}' cannot be stored sparse, the graph already has "
                        f"parameters named {clash}")
    encode = from_dense_windows if layout.layout == "windows" else from_dense
    arrays = encode(matrix_view(np.asarray(graph.param_values[name])), layout.block)
    return tuple(b.param(n, a) for n, a in zip(names, arrays))


def format_sparsity(graph: Graph) -> str:
    """The sparsify decisions as // comments, one line per kernel parameter."""
    return "\n".join(f"// sparsify: {d.line()}" for d in graph.meta.get("sparsity", ()))


def weight_bytes(graph: Graph) -> int:
    """Bytes of every parameter of `graph` (compact sparse ones as stored; not the panel-packed copies
    of dense kernels, ir/f32_panels.py, which are derived from weights counted here)."""
    return sum(math.prod(p.type.shape) * p.type.dtype.itemsize for p in graph.params
               if parse_packed_name(p.param_name) is None)
