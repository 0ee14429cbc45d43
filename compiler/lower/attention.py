"""The fused attention kernel (kind "attention", passes/fuse_attention.py): softmax(Q K^T) V per head.

One task per (batch item, head), split across the thread pool. A task runs two small GEMMs through the
packed GEMM driver (kernels/gemm.py), with the heads-in-the-middle layouts as strides: K[n,:,h,:] is
transposed in register tiles into a stack buffer (kernels/transpose_tile.py; the GEMM would gather it),
scores[T,S] = Q[n,:,h,:] @ K^T into another (one head's scores stay in L1/L2 instead of an [N,H,T,S]
tensor going through memory), softmax over each row in place, then Y[n,:,h,:] = scores @ V[n,:,h,:]
written straight into the [N,T,H,Dv] output.
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from kcompile.ir.attention_chain import match_attention
from kcompile.ir.ops.fused import computing_nodes

from ..kernels.config import gemm_shape, gemm_wide_shape, vector_bits
from ..kernels.epilogue import BiasActivation
from ..kernels.gemm import GRAIN_FLOPS, GemmProblem, gemm_function
from ..kernels.operands import BatchShape, Strided, StridedA, StridedB, StridedC
from ..kernels.transpose_tile import transpose_function
from ..loops import I64, entry_alloca, for_range, gep, i64, internal_function
from ..threads import ParallelRegion, effective_threads
from .nn import _call, _rows
from .softmax import softmax_row

F32 = ir.FloatType()


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
    scores = _gemm(module, features, f"{name}.scores", t, s, d, Strided(h * d, 1), Strided(s, 1), s)
    mix = _gemm(module, features, f"{name}.mix", t, dv, s, Strided(s, 1), Strided(h * dv, 1), h * dv)
    lanes = vector_bits(features) // 32
    transpose = transpose_function(module, lanes)

    def task(b, item, fields):
        qp, kp, vp, yp = fields
        n, head = b.sdiv(item, i64(h)), b.srem(item, i64(h))
        at = lambda p, rows, width: gep(b, p, b.add(b.mul(n, i64(rows * h * width)), b.mul(head, i64(width))))
        buf = entry_alloca(b, F32, t * s, name="attention.scores")
        kt = entry_alloca(b, F32, d * s, name="attention.kt")
        one = i64(1)
        b.call(transpose, [kt, at(kp, s, d), i64(s), i64(h * d), i64(s), i64(d)])
        b.call(scores, [at(qp, t, d), kt, buf, one, one])
        with for_range(b, t, name="attention.row") as r:
            row = gep(b, buf, b.mul(r, i64(s)))
            softmax_row(b, row, row, i64(s), lanes, F32)
        b.call(mix, [buf, at(vp, s, dv), at(yp, t, dv), one, one])

    b = ir.IRBuilder(fn.append_basic_block("entry"))
    *ptrs, batch, nthreads = fn.args
    items = b.mul(batch, i64(h))
    threads = effective_threads(b, nthreads, b.mul(items, i64(2 * t * s * (d + dv))), GRAIN_FLOPS)
    region = ParallelRegion(module, f"{name}.worker", [p.type for p in ptrs], task)
    region.run(b, threads, items, list(ptrs))
    b.ret_void()
    return fn


def _gemm(module, features, name, m, n, k, a: Strided, b: Strided, ldc: int) -> ir.Function:
    """One head's C[m x n] = A[m x k] @ B[k x n] over strided A and B, C rows `ldc` apart (batch 1)."""
    shape = gemm_shape(features, 4, n)
    one = BatchShape()
    prob = GemmProblem(name, F32, one, m, n, k, StridedA(a, one), StridedB(b, one, shape.lanes),
                       StridedC(Strided(ldc, 1), one), BiasActivation())
    return gemm_function(module, prob, shape, gemm_wide_shape(features, 4))
