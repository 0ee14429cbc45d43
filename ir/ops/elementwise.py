"""Elementwise ops: unary, binary (NumPy broadcasting), comparisons, where, cast, constant."""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import bool_
from ..registry import Attr, defop
from ..types import TensorType
from ._util import broadcast_shapes, float_only, numeric, require, same_dtype

_erf = np.frompyfunc(math.erf, 1, 1)


def _sigmoid(x):
    return np.exp(-np.logaddexp(np.zeros((), x.dtype), -x))


# name -> (reference, operand kind, differentiable). kind: float | numeric | bool.
# sign, floor, ceil and round are differentiable with a zero gradient, as in JAX.
UNARY = {
    "neg": (np.negative, "numeric", True),
    "abs": (np.abs, "numeric", True),
    "sign": (np.sign, "numeric", True),
    "exp": (np.exp, "float", True),
    "log": (np.log, "float", True),
    "sqrt": (np.sqrt, "float", True),
    "rsqrt": (lambda x: 1 / np.sqrt(x), "float", True),
    "square": (np.square, "numeric", True),
    "reciprocal": (lambda x: 1 / x, "float", True),
    "tanh": (np.tanh, "float", True),
    "sigmoid": (_sigmoid, "float", True),
    "relu": (lambda x: np.maximum(x, np.zeros((), x.dtype)), "numeric", True),
    "erf": (lambda x: np.asarray(_erf(x)).astype(x.dtype), "float", True),  # frompyfunc gives a scalar for 0-d
    "softplus": (lambda x: np.logaddexp(np.zeros((), x.dtype), x), "float", True),
    "floor": (np.floor, "float", True),
    "ceil": (np.ceil, "float", True),
    "round": (np.round, "float", True),  # half to even, as Keras and NumPy
    "sin": (np.sin, "float", True),
    "cos": (np.cos, "float", True),
    "log1p": (np.log1p, "float", True),
    "expm1": (np.expm1, "float", True),
    "logical_not": (np.logical_not, "bool", False),
}

# name -> (reference, operand kind, result is bool, differentiable)
BINARY = {
    "add": (np.add, "numeric", False, True),
    "sub": (np.subtract, "numeric", False, True),
    "mul": (np.multiply, "numeric", False, True),
    "div": (np.divide, "float", False, True),
    "pow": (np.power, "float", False, True),
    "maximum": (np.maximum, "numeric", False, True),
    "minimum": (np.minimum, "numeric", False, True),
    "equal": (np.equal, "any", True, False),
    "not_equal": (np.not_equal, "any", True, False),
    "less": (np.less, "numeric", True, False),
    "less_equal": (np.less_equal, "numeric", True, False),
    "greater": (np.greater, "numeric", True, False),
    "greater_equal": (np.greater_equal, "numeric", True, False),
    "logical_and": (np.logical_and, "bool", True, False),
    "logical_or": (np.logical_or, "bool", True, False),
}


def _check_kind(t: TensorType, kind: str, what: str):
    if kind == "float":
        float_only(t, what)
    elif kind == "numeric":
        numeric(t, what)
    elif kind == "bool":
        require(t.dtype == bool_, f"{what} needs a bool operand, got {t}")


def _unary_infer(kind):
    def infer(ts, attrs):
        _check_kind(ts[0], kind, "operand")
        return [ts[0]]
    return infer


def _unary_ref(fn):
    return lambda xs, attrs, batch: [np.asarray(fn(xs[0])).astype(xs[0].dtype, copy=False)]


def _binary_infer(kind, is_cmp):
    def infer(ts, attrs):
        dt = same_dtype(ts)
        _check_kind(ts[0], kind, "operands")
        return [TensorType(broadcast_shapes(ts[0].shape, ts[1].shape), bool_ if is_cmp else dt)]
    return infer


def _binary_ref(fn, is_cmp):
    def ref(xs, attrs, batch):
        out = fn(xs[0], xs[1])
        return [np.asarray(out).astype(np.bool_ if is_cmp else xs[0].dtype, copy=False)]
    return ref


def _traits(kind):
    return ("elementwise", "integer") if kind in ("numeric", "any") else ("elementwise",)


for _name, (_fn, _kind, _diff) in UNARY.items():
    defop(_name, ("x",), _unary_infer(_kind), _unary_ref(_fn), differentiable=_diff,
          doc=f"elementwise {_name}", traits=_traits(_kind))

for _name, (_fn, _kind, _cmp, _diff) in BINARY.items():
    defop(_name, ("a", "b"), _binary_infer(_kind, _cmp), _binary_ref(_fn, _cmp), differentiable=_diff,
          doc=f"elementwise {_name} with NumPy broadcasting", traits=_traits(_kind))


def _where_infer(ts, attrs):
    require(ts[0].dtype == bool_, f"condition must be bool, got {ts[0]}")
    dt = same_dtype(ts[1:], "branches")
    return [TensorType(broadcast_shapes(ts[0].shape, ts[1].shape, ts[2].shape), dt)]


defop("where", ("cond", "a", "b"), _where_infer,
      lambda xs, attrs, batch: [np.where(xs[0], xs[1], xs[2])],
      doc="select a where cond else b, broadcasting all three", traits=("elementwise", "integer"))

defop("cast", ("x",), lambda ts, attrs: [ts[0].with_dtype(attrs["dtype"])],
      lambda xs, attrs, batch: [xs[0].astype(attrs["dtype"].np)],
      attrs={"dtype": Attr("dtype")}, doc="convert element type (float->int truncates toward zero)",
      traits=("elementwise", "integer"))

defop("constant", (), lambda ts, attrs: [TensorType(attrs["value"].shape, attrs["value"].dtype)],
      lambda xs, attrs, batch: [np.array(attrs["value"])],
      attrs={"value": Attr("array")}, differentiable=False, doc="a literal tensor")

# stop_gradient: the identity forward; its gradient rule returns no gradient (passes/grad_rules/elementwise.py).
defop("stop_gradient", ("x",), lambda ts, attrs: [ts[0]], lambda xs, attrs, batch: [np.array(xs[0])],
      doc="identity whose gradient is zero (Keras ops.stop_gradient)", traits=("elementwise", "integer"))
