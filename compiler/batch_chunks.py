"""Large batches run as a loop of smaller ones when every node treats batch rows independently.

A batch-256 MNIST convnet writes 22 MB of first-layer activations before the pool reads them back:
far past the caches, while at batch 64 they stay in L3; and a dense layer's GEMM reads its weights
in place only up to 192 rows (kernels/gemm.py). So an entry whose graph is row-separable (every
value carries the batch N as its leading axis and only there, every node computes row i of its
outputs from row i of its inputs) runs the batch in chunks of at most `chunk_rows` rows: one call of
the same body per chunk, with the input and output pointers advanced by whole rows. The workspace
the caller sized for the whole batch is more than one chunk needs. Results are the body's on each
chunk, so they equal an unchunked call's up to the kernels' own per-shape summation order.

Separability is checked conservatively: an op outside ROW_WISE, an axis attribute naming axis 0, a
transpose of a batch-leading matrix, parameter updates or other symbolic dims keep the whole batch.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import Graph
from kcompile.ir.ops.elementwise import BINARY, UNARY

from .loops import I32, I64, ceil_div, for_range, i64, imin

# Largest batched workspace a chunk may touch: 8 MiB keeps a chunk's activations in this machine's L3
# share (measured: the convnet at batch 64 runs 10 % faster per image than at 256).
CHUNK_BYTES = 8 << 20
# Chunk rows: at most 2 MC blocks, so a dense layer still reads its weights in place (kernels/gemm.py).
MAX_ROWS = 192
MIN_ROWS = 32

ROW_WISE = set(UNARY) | set(BINARY) | {"where", "cast", "constant", "stop_gradient", "softmax", "log_softmax", "matmul", "conv1d", "conv2d",
                          "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "reshape", "fused",
                          "quantize", "dequantize", "requantize", "matmul_integer", "conv2d_integer"}


def chunk_rows(graph: Graph, workspace_per_row: int) -> int:
    """Rows per chunk for this graph's entry (its batched workspace takes `workspace_per_row` bytes
    per row, besides the rows of its inputs and outputs), or 0: run every batch whole."""
    if not row_separable(graph):
        return 0
    per_row = workspace_per_row + sum(_row_bytes(v) for v in list(graph.inputs) + list(graph.outputs))
    return max(MIN_ROWS, min(MAX_ROWS, CHUNK_BYTES // max(1, per_row)))


def row_separable(graph: Graph) -> bool:
    if graph.meta.get("param_updates") or not graph.inputs or not graph.outputs:
        return False
    ends = list(graph.inputs) + list(graph.outputs)
    return all(_batch_leading(v) for v in ends) and _nodes_row_wise(graph.nodes)


def _nodes_row_wise(nodes) -> bool:
    for node in nodes:
        if node.op not in ROW_WISE or not all(_batch_free(v) or _batch_leading(v) for v in node.inputs + node.outputs):
            return False
        if not all(_batch_leading(v) for v in node.outputs if node.op != "constant"):
            return False
        if any(_names_axis0(node.attrs.get(a), node.inputs[0].type.rank) for a in ("axis", "axes") if node.inputs):
            return False
        if node.op in ("matmul", "matmul_integer") and not _matmul_rows(node):
            return False
        body = node.attrs.get("body")
        if body is not None and not _nodes_row_wise(body.nodes):
            return False
    return True


def _matmul_rows(node) -> bool:
    """Row i of the product comes from row i of a: no transpose moves the batch axis."""
    a, b = node.inputs[:2]
    if node.attrs.get("transpose_a") and _batch_leading(a) and a.type.rank < 3:
        return False
    if node.attrs.get("transpose_b") and _batch_leading(b) and b.type.rank < 3:
        return False
    return _batch_leading(a) and (_batch_free(b) or b.type.rank >= 3)


def _names_axis0(axis, rank: int) -> bool:
    if axis is None:
        return False
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return any(isinstance(x, int) and rank and x % rank == 0 for x in axes)


def _batch_leading(v) -> bool:
    shape = v.type.shape
    return bool(shape) and shape[0] == "N" and not any(isinstance(d, str) for d in shape[1:])


def _batch_free(v) -> bool:
    return not any(isinstance(d, str) for d in v.type.shape)


def _row_bytes(v) -> int:
    n = v.type.dtype.itemsize
    for d in v.type.shape[1:]:
        n *= d
    return n


def chunked_entry(module: ir.Module, name: str, body: ir.Function, graph: Graph, outputs: list,
                  rows: int) -> ir.Function:
    """`name`: a function of body's type calling body (made internal) once per chunk of rows.

    outputs: the caller's outputs in slot order (the entry's outputs array)."""
    body.linkage = "internal"
    fn = ir.Function(module, body.function_type, name)
    inputs, outs, params, workspace, batch, nthreads = fn.args[:6]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    whole = b.icmp_signed("<=", batch, i64(rows))
    with b.if_then(whole):
        b.ret(b.call(body, list(fn.args)))
    chunk = ceil_div(b, batch, ceil_div(b, batch, rows))   # equal chunks of at most `rows`
    tables = [_table(b, inputs, [_row_bytes(v) for v in graph.inputs]),
              _table(b, outs, [_row_bytes(v) for v in outputs])]
    status = b.alloca(I32)
    b.store(ir.Constant(I32, 0), status)
    with for_range(b, 0, batch, chunk, "chunk") as start:
        with b.if_then(b.icmp_signed("==", b.load(status), ir.Constant(I32, 0))):
            ptrs = [_advance(b, src, dst, sizes, start) for src, dst, sizes in tables]
            n = imin(b, chunk, b.sub(batch, start))
            b.store(b.call(body, [ptrs[0], ptrs[1], params, workspace, n, nthreads]), status)
    b.ret(b.load(status))
    return fn


def _table(b, src, row_bytes: list):
    """(caller's pointer table, a local table of as many pointers, row sizes)."""
    dst = b.alloca(ir.ArrayType(src.type.pointee, max(1, len(row_bytes))))
    return src, dst, row_bytes


def _advance(b, src, dst, row_bytes: list, start):
    """dst[k] = src[k] + start * row_bytes[k]; the table's first element pointer."""
    zero = ir.Constant(I32, 0)
    for k, nbytes in enumerate(row_bytes):
        base = b.load(b.gep(src, [i64(k)]))
        b.store(b.gep(base, [b.mul(start, i64(nbytes))]), b.gep(dst, [zero, ir.Constant(I32, k)]))
    return b.gep(dst, [zero, zero])
