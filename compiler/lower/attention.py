"""The fused attention kernel (kind "attention", passes/fuse_attention.py): softmax(Q K^T) V per head.

One task per (batch item, head), split across the thread pool. A task transposes K[n,:,h,:] in register
tiles into a stack buffer (kernels/transpose_tile.py; read as rows of K^T), then runs the query rows in
blocks of MR through kernels/attention_rows.py: scores, softmax and the product with V[n,:,h,:] for a
block stay in registers and a small stack block, and Y[n,:,h,:] is written straight into the
[N,T,H,Dv] output. The [T, S] scores of a head never go through memory, nothing is packed.
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from kcompile.ir.attention_chain import match_attention
from kcompile.ir.ops.fused import computing_nodes

from ..kernels.attention_rows import block_function, block_rows, head_shape, row_blocks
from ..kernels.transpose_tile import transpose_function
from ..loops import I64, entry_alloca, for_range, gep, i64, imin, internal_function, prefetch
from ..threads import ParallelRegion, effective_threads
from .nn import _call, _rows

# Flops per thread below which another thread is not worth waking (~40 us of one core's work): the
# grain bench_transformer was measured with; GEMMs use a smaller one that also counts the weights
# they stream (compiler/kernels/gemm.py).
GRAIN_FLOPS = 1 << 22

F32 = ir.FloatType()
CACHE_LINE_FLOATS = 16   # f32s per 64-byte cache line


def lower_attention(ctx, body, leaves, out):
    """Lower a fused attention node: its body's Q, K, V (leaves) -> out [N, T, H, Dv]."""
    chain = match_attention(computing_nodes(body)[-1])
    q, k, v = (leaves[x] for x in (chain.q, chain.k, chain.v))
    _, t, h, d = q.shape
    s, dv = k.shape[1], v.shape[3]
    fn = attention_function(ctx.module, ctx.target.features, t, s, h, d, dv)
    _call(ctx, fn, [q, k, v, out], rows=_rows(ctx, q.shape[0]))


def attention_function(module, features: str, t: int, s: int, h: int, d: int, dv: int) -> ir.Function:
    """Get or emit `void f(f32* q, f32* k, f32* v, f32* y, i64 batch, i64 nthreads)`."""
    key = repr((features, t, s, h, d, dv))
    name = f"kc_attention_{t}x{s}x{h}x{d}x{dv}_" + hashlib.sha1(key.encode()).hexdigest()[:10]
    ptr = F32.as_pointer()
    fn = internal_function(module, name, ir.VoidType(), [ptr] * 4 + [I64, I64], ["q", "k", "v", "y", "batch", "nthreads"])
    if fn is None:
        return module.globals[name]
    hs, mr = head_shape(features, t, s, h, d, dv), block_rows(features)
    full, rest = row_blocks(t, mr)
    blocks = {rows: block_function(module, name, hs, rows) for rows in {mr, *rest} if rows}
    transpose = transpose_function(module, hs.lanes)

    def task(b, item, fields):
        qp, kp, vp, yp, items = fields
        # the next item's Q, K and V head slices (strided rows, which the hardware prefetchers follow
        # late: the K transpose waited on them) start on their way to L2 now, while this one computes
        _prefetch_item(b, imin(b, b.add(item, i64(1)), b.sub(items, i64(1))), (qp, kp, vp), (t, s, s), (d, d, dv), h)
        n, head = b.sdiv(item, i64(h)), b.srem(item, i64(h))
        at = lambda p, rows, width: gep(b, p, b.add(b.mul(n, i64(rows * h * width)), b.mul(head, i64(width))))
        kt = entry_alloca(b, F32, d * hs.padded_s, name="attention.kt")
        block = entry_alloca(b, F32, mr * hs.padded_s, name="attention.block")
        b.call(transpose, [kt, at(kp, s, d), i64(hs.padded_s), i64(hs.qk_stride), i64(s), i64(d)])
        q0, v0, y0 = at(qp, t, d), at(vp, s, dv), at(yp, t, dv)

        def run(row, rows):
            b.call(blocks[rows], [gep(b, q0, b.mul(row, i64(hs.qk_stride))), kt, v0,
                                  gep(b, y0, b.mul(row, i64(hs.vy_stride))), block])

        with for_range(b, 0, full * mr, mr, "attention.rows") as r0:
            run(r0, mr)
        row = full * mr
        for rows in rest:
            run(i64(row), rows)
            row += rows

    b = ir.IRBuilder(fn.append_basic_block("entry"))
    *ptrs, batch, nthreads = fn.args
    items = b.mul(batch, i64(h))
    threads = effective_threads(b, nthreads, b.mul(items, i64(2 * t * s * (d + dv))), GRAIN_FLOPS)
    region = ParallelRegion(module, f"{name}.worker", [p.type for p in ptrs] + [I64], task)
    region.run(b, threads, items, list(ptrs) + [items])
    b.ret_void()
    return fn


def _prefetch_item(b, item, ptrs, rows, widths, h):
    """Prefetch (to L2) every cache line of item (n, head)'s rows of each [N, rows, H, width] tensor."""
    n, head = b.sdiv(item, i64(h)), b.srem(item, i64(h))
    for p, count, width in zip(ptrs, rows, widths):
        first = gep(b, p, b.add(b.mul(n, i64(count * h * width)), b.mul(head, i64(width))))
        with for_range(b, 0, count, 1, "attention.prefetch") as r:
            row = gep(b, first, b.mul(r, i64(h * width)))
            for line in range(0, width, CACHE_LINE_FLOATS):
                prefetch(b, gep(b, row, line))
