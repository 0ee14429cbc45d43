"""Epilogues: elementwise code a GEMM/convolution applies to each finished output vector before storing it.

The fusion pass hands a bias add and/or an activation to the matmul/conv lowering; the kernel runs it
on the tile while it is still in registers, so the output is written once.  An epilogue takes
`nptrs` extra tensors at the kernel function (same dtype as the output) and hands the micro-kernel
`kernel_args` (pointers, flags), so that epilogues sharing a `key` share one set of micro-kernels.
"""
from __future__ import annotations

from llvmlite import ir

from ..loops import I1, is_float, optional_masked_load, splat, zero

ACTIVATIONS = ("linear", "relu")


class Epilogue:
    """Interface (and the no-op epilogue).  `ident` names a call-site variant, `key` its micro-kernels."""

    key = "none"
    nptrs = 0

    @property
    def ident(self) -> str:
        return self.key

    def kernel_types(self, elem: ir.Type) -> list:
        return [elem.as_pointer()] * self.nptrs

    def kernel_args(self, b: ir.IRBuilder, ptrs: list, elem: ir.Type) -> list:
        return list(ptrs)

    def apply(self, b: ir.IRBuilder, value, row, col, kargs, mask):
        """value: <lanes x T> holding C[row, col : col + lanes]; mask: lanes in range (None = all)."""
        return value


class BiasActivation(Epilogue):
    """C = act(C + bias[col]) with an optional bias vector (length N); act is linear or relu.

    Bias and relu are run-time arguments of the micro-kernel (a null bias is skipped), so plain,
    biased and relu GEMMs all share one set of micro-kernels.  Other activations (sigmoid, tanh, ...)
    are applied by codegen in place after the kernel.
    """

    key = "biasact"

    def __init__(self, bias: bool = False, activation: str = "linear"):
        if activation not in ACTIVATIONS:
            raise NotImplementedError(f"matmul epilogue: activation '{activation}' is not built in "
                                      f"(built in: {', '.join(ACTIVATIONS)})")
        self.bias, self.activation = bias, activation
        self.nptrs = 1 if bias else 0

    @property
    def ident(self) -> str:
        return f"{'bias' if self.bias else ''}{self.activation}"

    def kernel_types(self, elem):
        return [elem.as_pointer(), I1]

    def kernel_args(self, b, ptrs, elem):
        bias = ptrs[0] if self.bias else ir.Constant(elem.as_pointer(), None)
        return [bias, ir.Constant(I1, self.activation == "relu")]

    def apply(self, b, value, row, col, kargs, mask):
        bias_ptr, use_relu = kargs
        lanes = value.type.count
        present = b.icmp_unsigned("!=", bias_ptr, ir.Constant(bias_ptr.type, None))
        lanes_on = ir.Constant(ir.VectorType(I1, lanes), [1] * lanes) if mask is None else mask
        # a plain (not inbounds) address: with no bias it points nowhere, and the load reads elsewhere
        bias = optional_masked_load(b, b.gep(bias_ptr, [col]), present, lanes_on, lanes)
        value = b.fadd(value, bias) if is_float(value.type.element) else b.add(value, bias)
        return relu(b, value, unless=b.not_(use_relu))


def relu(b: ir.IRBuilder, v, unless=None):
    """max(v, 0) that keeps NaN, as np.maximum does (an unordered compare is true for NaN); v itself
    where the i1 `unless` is set.

    `unless` joins the lane mask rather than selecting between v and relu(v): LLVM turned that scalar
    select of a run-time flag into a branch around every vector of the tile (two taken branches per
    vector on the micro-kernel's epilogue, 48 per 6x64 tile)."""
    z = zero(v.type)
    keep = b.fcmp_unordered(">", v, z) if is_float(v.type.element) else b.icmp_signed(">", v, z)
    if unless is not None:
        keep = b.or_(keep, splat(b, unless, v.type.count))
    return b.select(keep, v, z)
