"""Lowering of sparse_matmul onto the sparse kernels (compiler/kernels/sparse.py).

All leading axes of the input fold into rows (as for a dense layer's matmul); the bias add and/or
relu that a fused node (ir/ops/fused.py) assigns to the kernel is applied in the kernel's
registers, the fused lowering runs the rest of the epilogue in place after the kernel.
"""
from __future__ import annotations

from ..kernels.sparse import SparseSpec, sparse_matmul_function
from ..loops import I64, product
from . import lowering


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
    nthreads = ctx.nthreads if ctx.nthreads.type == I64 else b.zext(ctx.nthreads, I64)
    b.call(fn, ptrs + [rows, nthreads])
