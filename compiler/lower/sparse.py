"""Lowerings of sparse_matmul and sparse_qmatmul onto the sparse kernels (compiler/kernels/sparse*.py).

All leading axes of the input fold into rows (as for a dense layer's matmul); the bias add and/or
relu that a fused node (ir/ops/fused.py) assigns to the kernel is applied in the kernel's
registers, the fused lowering runs the rest of the epilogue in place after the kernel.
"""
from __future__ import annotations

from ..kernels.sparse import SparseSpec, sparse_matmul_function
from ..kernels.sparse_int8 import sparse_qmatmul_function
from ..loops import I64, i64, product
from ..threads import effective_threads

# Stored multiply-adds (rows x stored values) per thread below which another thread is not worth
# waking: about 40 us of the sparse kernels' work (0.03-0.05 ns each).
# Counting rows alone, a batch-1 convolution's 676 patch rows of a 9x32 kernel (2 us) woke a thread.
GRAIN = 1 << 20


def _threads(ctx, rows):
    """The threads worth offering the kernel for rows x the node's stored values."""
    b = ctx.builder
    nthreads = ctx.nthreads if ctx.nthreads.type == I64 else b.zext(ctx.nthreads, I64)
    stored = ctx.node.inputs[1].type.shape[0]
    return effective_threads(b, nthreads, b.mul(rows, i64(stored)), GRAIN)
from . import lowering
from .quant import _epilogue as int8_epilogue   # the dense int8 GEMM's claim of a fused requantize


def _claim_bias_relu(ctx):
    """(bias Buffer or None, relu?) the fused node gives the kernel, or (None, False) when it gives none."""
    epi = ctx.epilogue
    if epi is None or not epi.in_kernel:
        return None, False
    if epi.activation not in ("linear", "relu"):
        raise NotImplementedError(f"sparse_matmul applies a bias and relu in its kernel, not '{epi.activation}'")
    ctx.take_epilogue()
    return epi.bias, epi.activation == "relu"


@lowering("sparse_matmul")
def lower_sparse_matmul(ctx):
    a = ctx.node.inputs[0]
    if not (ctx.ins[2].value.is_param and ctx.ins[3].value.is_param):  # (a fused body's inputs: see the Buffers)
        # native code trusts the index arrays: only parameters are checked before code runs
        # (the runtime's loader and set_weights, the JIT's calls)
        raise NotImplementedError("sparse_matmul compiles only with its index and offsets as parameters")
    bias, relu = _claim_bias_relu(ctx)
    n = ctx.node.outputs[0].type.shape[-1]
    spec = SparseSpec(a.type.dtype.name, a.type.shape[-1], n, tuple(ctx.attrs["block"]), bias is not None, relu,
                      ctx.target.features, ctx.attrs["layout"])
    fn = sparse_matmul_function(ctx.module, spec)
    b = ctx.builder
    buffers = [*ctx.ins, ctx.outs[0]] + ([bias] if bias is not None else [])
    ptrs = [b.bitcast(buf.ptr, arg.type) for buf, arg in zip(buffers, fn.args)]
    rows = product(b, ctx.ins[0].dims[:-1])
    b.call(fn, ptrs + [rows, _threads(ctx, rows)])


@lowering("sparse_qmatmul")
def lower_sparse_qmatmul(ctx):
    """The sparse int8 kernel (kernels/sparse_int8.py) with the dense int8 GEMM's fused epilogue
    (a bias add and requantize claimed as lower/quant.py claims them, else i32 results)."""
    a = ctx.node.inputs[0]
    if not (ctx.ins[2].value.is_param and ctx.ins[3].value.is_param):
        raise NotImplementedError("sparse_qmatmul compiles only with its index and offsets as parameters")
    out, extra = int8_epilogue(ctx)
    fn = sparse_qmatmul_function(ctx.module, a.type.dtype.name, a.type.shape[-1], ctx.attrs["n"],
                                 tuple(ctx.attrs["block"]), out, ctx.target.features)
    b = ctx.builder
    ptrs = [b.bitcast(buf.ptr, arg.type) for buf, arg in zip([*ctx.ins, ctx.outs[0], *extra], fn.args)]
    rows = product(b, ctx.ins[0].dims[:-1])
    b.call(fn, ptrs + [rows, _threads(ctx, rows)])
