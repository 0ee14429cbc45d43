"""Epilogues: elementwise code a GEMM/convolution applies to each finished output vector before storing it.

The fusion pass hands a bias add and/or an activation to the matmul/conv lowering; the kernel runs it
on the tile while it is still in registers, so the output is written once.  An epilogue may read
extra tensors (`ptrs`, same dtype as the output), indexed by the tile's row and column.
"""
from __future__ import annotations

from llvmlite import ir

from .irutil import gep, is_float, load_vec, masked_load, zero


class Epilogue:
    """No-op epilogue; subclasses override `apply`.  `key` names the variant in function names."""

    key = "none"
    nptrs = 0

    def apply(self, b: ir.IRBuilder, value, row, col, ptrs, mask):
        """value: <lanes x T> holding C[row, col : col + lanes]; mask: lanes in range (None = all)."""
        return value


ACTIVATIONS = ("linear", "relu")


class BiasActivation(Epilogue):
    """C = act(C + bias[col]) with an optional bias vector (length N); act is linear or relu.

    Other activations (sigmoid, tanh, ...) come as general `Epilogue`s from the elementwise codegen.
    """

    def __init__(self, bias: bool, activation: str = "linear"):
        if activation not in ACTIVATIONS:
            raise NotImplementedError(f"matmul epilogue: activation '{activation}' is not built in "
                                      f"(built in: {', '.join(ACTIVATIONS)})")
        self.bias, self.activation = bias, activation
        self.nptrs = 1 if bias else 0
        self.key = f"{'bias' if bias else ''}{activation}"

    def apply(self, b, value, row, col, ptrs, mask):
        lanes = value.type.count
        if self.bias:
            src = gep(b, ptrs[0], col)
            bias = load_vec(b, src, lanes) if mask is None else masked_load(b, src, mask, lanes)
            value = b.fadd(value, bias) if is_float(value.type.element) else b.add(value, bias)
        return relu(b, value) if self.activation == "relu" else value


def relu(b: ir.IRBuilder, v):
    """max(v, 0) that keeps NaN, as np.maximum does (an unordered compare is true for NaN)."""
    z = zero(v.type)
    keep = b.fcmp_unordered(">", v, z) if is_float(v.type.element) else b.icmp_signed(">", v, z)
    return b.select(keep, v, z)
