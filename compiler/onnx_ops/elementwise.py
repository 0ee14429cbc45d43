"""ONNX forms of the elementwise ops (unary, binary, comparisons, where, cast, constant)."""
from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from . import onnx_op
from .context import ELEM_TYPE

# IR op -> ONNX op with the same semantics (and the same NumPy broadcasting for binaries).
DIRECT = {
    "abs": "Abs", "sign": "Sign", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal",
    "tanh": "Tanh", "sigmoid": "Sigmoid", "erf": "Erf", "softplus": "Softplus", "floor": "Floor",
    "ceil": "Ceil", "round": "Round", "sin": "Sin", "cos": "Cos", "logical_not": "Not",
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
    "minimum": "Min", "equal": "Equal", "less": "Less", "less_equal": "LessOrEqual", "greater": "Greater",
    "greater_equal": "GreaterOrEqual", "logical_and": "And", "logical_or": "Or", "where": "Where",
}


def _direct(ctx, node, ins, outs):
    ctx.emit(DIRECT[node.op], ins, out=outs[0])


onnx_op(*DIRECT)(_direct)


def _np_dtype(node, i=0):
    return node.inputs[i].type.dtype.np


@onnx_op("neg")
def _neg(ctx, node, ins, outs):
    dt = _np_dtype(node)
    if dt == np.uint8:  # ONNX Neg has no unsigned form; 0 - x wraps exactly like NumPy
        ctx.emit("Sub", [ctx.scalar(0, dt, "zero"), ins[0]], out=outs[0])
    else:
        ctx.emit("Neg", ins, out=outs[0])


@onnx_op("relu")
def _relu(ctx, node, ins, outs):
    dt = _np_dtype(node)
    if dt == np.uint8:  # unsigned values are never negative
        ctx.emit("Identity", ins, out=outs[0])
    else:
        ctx.emit("Relu", ins, out=outs[0])


@onnx_op("square")
def _square(ctx, node, ins, outs):
    ctx.emit("Mul", [ins[0], ins[0]], out=outs[0])


@onnx_op("rsqrt")
def _rsqrt(ctx, node, ins, outs):
    ctx.emit("Reciprocal", [ctx.emit("Sqrt", ins)], out=outs[0])


@onnx_op("not_equal")
def _not_equal(ctx, node, ins, outs):
    ctx.emit("Not", [ctx.emit("Equal", ins)], out=outs[0])


@onnx_op("log1p")
def _log1p(ctx, node, ins, outs):
    """log1p(x) = x * log(u) / (u - 1) with u = 1 + x (Kahan), exact where log(1 + x) would cancel."""
    x, dt = ins[0], _np_dtype(node)
    one = ctx.scalar(1, dt, "one")
    u = ctx.emit("Add", [x, one])
    log_u = ctx.emit("Log", [u])
    kahan = ctx.emit("Div", [ctx.emit("Mul", [x, log_u]), ctx.emit("Sub", [u, one])])
    small = ctx.emit("Where", [ctx.emit("Equal", [u, one]), x, kahan])
    _select_small(ctx, x, dt, small, log_u, outs[0])


@onnx_op("expm1")
def _expm1(ctx, node, ins, outs):
    """expm1(x) = (u - 1) * x / log(u) with u = exp(x) (Kahan), exact where exp(x) - 1 would cancel."""
    x, dt = ins[0], _np_dtype(node)
    one = ctx.scalar(1, dt, "one")
    u = ctx.emit("Exp", [x])
    u_minus_1 = ctx.emit("Sub", [u, one])
    kahan = ctx.emit("Div", [ctx.emit("Mul", [u_minus_1, x]), ctx.emit("Log", [u])])
    small = ctx.emit("Where", [ctx.emit("Equal", [u, one]), x, kahan])
    _select_small(ctx, x, dt, small, u_minus_1, outs[0])


def _select_small(ctx, x, dt, small, plain, out):
    """Kahan's form for |x| < 1/2 (no cancellation left), the plain formula elsewhere (no 0/0, inf/inf)."""
    near_zero = ctx.emit("Less", [ctx.emit("Abs", [x]), ctx.scalar(0.5, dt, "half")])
    ctx.emit("Where", [near_zero, small, plain], out=out)


@onnx_op("cast")
def _cast(ctx, node, ins, outs):
    ctx.emit("Cast", ins, out=outs[0], to=ELEM_TYPE[node.attrs["dtype"].name])


@onnx_op("constant")
def _constant(ctx, node, ins, outs):
    ctx.emit("Constant", [], out=outs[0], value=numpy_helper.from_array(np.asarray(node.attrs["value"])))


@onnx_op("stop_gradient")
def _stop_gradient(ctx, node, ins, outs):
    ctx.emit("Identity", ins, out=outs[0])  # inference graphs carry no gradients: the identity
