"""ONNX form of sparse_matmul: MatMul with the dense kernel restored (its zeros written out).

ONNX has no sparse matmul that runtimes accelerate, so the pruned model exports as what it is:
a dense kernel with zeros, named after the parameter it came from. The index structure must be
known (parameters with values), as it is in every graph the sparsify pass makes.
"""
from __future__ import annotations

from kcompile.ir.ops.sparse import to_dense

from . import onnx_op
from .context import UnsupportedOpError


@onnx_op("sparse_matmul")
def _sparse_matmul(ctx, node, ins, outs):
    a, values, index, offsets = node.inputs
    known = ctx.graph.param_values
    missing = [v for v in (values, index, offsets) if not v.is_param or v.param_name not in known]
    if missing:
        raise UnsupportedOpError(f"{node.where()}: sparse_matmul exports to ONNX only when its values, index and "
                                 "offsets are parameters with values (the dense kernel is rebuilt from them)")
    w = to_dense(*(known[v.param_name] for v in (values, index, offsets)), a.type.shape[-1], node.attrs["block"])
    ctx.emit("MatMul", [ins[0], ctx.const(w, node.attrs["weight"] or "kernel")], out=outs[0])
