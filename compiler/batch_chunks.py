"""Large batches run as chunks of rows when every node treats batch rows independently.

A batch-256 MNIST convnet writes 22 MB of first-layer activations before the pool reads them back:
far past the caches; a chunk of 32 images keeps them in L2/L3, and a 32-row dense layer reads its
weights in place at 97 % of the FMA peak (kernels/gemm.py). So an entry whose graph is row-separable
(every value carries the batch N as its leading axis and only there, every node computes row i of
its outputs from row i of its inputs) runs the batch in equal chunks of at most `chunk_rows` rows:
one call of the same body per chunk, with the input and output pointers advanced by whole rows.

Threads: when the graph has no static workspace, each chunk works in its own slice of the batched
workspace, so chunks run concurrently, one thread each (no barrier between layers, and each core
keeps its chunk's activations in its own L2). The chunks do not depend on the thread count, and a
chunk's result is the same on any thread, so threaded results equal one thread's bitwise; they equal
an unchunked call's up to the kernels' own per-shape summation order. A batch of one chunk or less
runs whole, its kernels splitting their work over the threads as before.

Separability is checked conservatively: an op outside ROW_WISE, an axis attribute naming axis 0, a
transpose of a batch-leading matrix, parameter updates or other symbolic dims keep the whole batch.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import Graph
from kcompile.ir.ops.elementwise import BINARY, UNARY

from .loops import I32, I64, ceil_div, entry_alloca, for_range, i64, imin
from .threads import ParallelRegion

# Largest working set (batched workspace, input and output rows) of one chunk.
CHUNK_BYTES = 8 << 20
# Rows per chunk: measured on the MNIST MLP and convnet, 1 thread, interleaved with onnxruntime,
# chunks of 32 rows ran batch 64 and 256 0.80-0.97x the time of chunks up to 192 rows
MAX_ROWS = 32
MIN_ROWS = 8

ROW_WISE = set(UNARY) | set(BINARY) | {
    "where", "cast", "constant", "stop_gradient", "softmax", "log_softmax", "matmul", "conv1d", "conv2d",
    "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "reshape", "fused",
    "quantize", "dequantize", "requantize", "matmul_integer", "conv2d_integer",
    "patches", "sparse_matmul", "sparse_qmatmul"}   # a sparse convolution's copy and its kernel: row by row too


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


def chunked_entry(module: ir.Module, name: str, body: ir.Function, graph: Graph, outputs: list, rows: int,
                  workspace_per_row: int, static_bytes: int) -> ir.Function:
    """`name`: a function of body's type calling body (made internal) once per chunk of rows.

    outputs: the caller's outputs in slot order (the entry's outputs array). With no static
    workspace, chunks own disjoint slices of the batched workspace, so with several threads they
    run concurrently, each on one thread (no barrier between layers; a chunk's result is the same
    on any thread); otherwise one after another, each kernel splitting its work over the threads."""
    body.linkage = "internal"
    fn = ir.Function(module, body.function_type, name)
    inputs, outs, params, workspace, batch, nthreads = fn.args[:6]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with b.if_then(b.icmp_signed("<=", batch, i64(rows))):
        b.ret(b.call(body, list(fn.args)))
    nchunks = ceil_div(b, batch, rows)
    chunk = ceil_div(b, batch, nchunks)   # equal chunks of at most `rows`
    status = b.alloca(I32)
    b.store(ir.Constant(I32, 0), status)
    sizes = ([_row_bytes(v) for v in graph.inputs], [_row_bytes(v) for v in outputs])
    run = _ChunkRun(body, sizes, workspace_per_row if static_bytes == 0 else 0)
    fields = [inputs, outs, params, workspace, batch, chunk, status]
    if static_bytes == 0:
        region = ParallelRegion(module, f"{name}.chunks", [f.type for f in fields],
                                lambda bb, task, f: run.emit(bb, task, f, ir.Constant(I32, 1)))
        region.run(b, b.zext(nthreads, I64), nchunks, fields)
    else:
        with for_range(b, 0, nchunks, 1, "chunk") as task:
            run.emit(b, task, fields, nthreads)
    b.ret(b.load(status))
    return fn


class _ChunkRun:
    """One chunk: pointer tables advanced to its first row, its workspace slice, the body's call."""

    def __init__(self, body, sizes, workspace_per_row: int):
        self.body, self.sizes, self.per_row = body, sizes, workspace_per_row

    def emit(self, b, task, fields, nthreads):
        inputs, outs, params, workspace, batch, chunk, status = fields
        start = b.mul(task, chunk)
        n = imin(b, chunk, b.sub(batch, start))
        ptrs = [_advance(b, src, row_bytes, start) for src, row_bytes in zip((inputs, outs), self.sizes)]
        ws = b.gep(workspace, [b.mul(start, i64(self.per_row))])   # per_row 0: the chunks share it
        st = b.call(self.body, [ptrs[0], ptrs[1], params, ws, n, nthreads])
        with b.if_then(b.icmp_signed("!=", st, ir.Constant(I32, 0))):
            b.store_atomic(st, status, "monotonic", 4)


def _advance(b, src, row_bytes: list, start):
    """A table (in the function's entry block) of src[k] + start * row_bytes[k]."""
    dst = entry_alloca(b, src.type.pointee, max(1, len(row_bytes)), align=None)
    for k, nbytes in enumerate(row_bytes):
        base = b.load(b.gep(src, [i64(k)]))
        b.store(b.gep(base, [b.mul(start, i64(nbytes))]), b.gep(dst, [i64(k)]))
    return dst
