"""Lowering of sparse_matmul onto the sparse kernels (compiler/kernels/sparse.py).

All leading axes of the input fold into rows (as for a dense layer's matmul); a fused bias add
and/or relu is claimed and applied in the kernel's registers, any other epilogue member is left
to codegen, which runs it in place after the kernel.
"""
from __future__ import annotations

from ..kernels.sparse import SparseSpec, sparse_matmul_function
from ..loops import I64, product
from . import lowering


def _claim_bias_relu(ctx):
    """(bias Buffer or None, relu?) claimed from the fused epilogue (None, False) when there is none."""
    if ctx.epilogue is None:
        return None, False
    found = ctx.epilogue.bias_activation()
    if found is None:
        return None, False
    ctx.take_epilogue()
    return found[0], found[1] == "relu"


@lowering("sparse_matmul")
def lower_sparse_matmul(ctx):
    a, _, index, offsets = ctx.node.inputs
    if not (index.is_param and offsets.is_param):
        # native code trusts the index arrays: only parameters are checked before code runs
        # (the runtime's loader and set_weights, the JIT's calls)
        raise NotImplementedError("sparse_matmul compiles only with its index and offsets as parameters")
    bias, relu = _claim_bias_relu(ctx)
    n = ctx.node.outputs[0].type.shape[-1]
    spec = SparseSpec(a.type.dtype.name, a.type.shape[-1], n, tuple(ctx.attrs["block"]), bias is not None, relu,
                      ctx.target.features)
    fn = sparse_matmul_function(ctx.module, spec)
    b = ctx.builder
    buffers = [*ctx.ins, ctx.outs[0]] + ([bias] if bias is not None else [])
    ptrs = [b.bitcast(buf.ptr, arg.type) for buf, arg in zip(buffers, fn.args)]
    rows = product(b, ctx.ins[0].dims[:-1])
    nthreads = ctx.nthreads if ctx.nthreads.type == I64 else b.zext(ctx.nthreads, I64)
    b.call(fn, ptrs + [rows, nthreads])
