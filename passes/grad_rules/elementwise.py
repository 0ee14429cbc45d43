"""VJPs of the elementwise ops: unary math, broadcasting binary ops, where and cast."""
from __future__ import annotations

import math

from . import defvjp
from ._emit import as_float_mask, const, unbroadcast


def _x(node):
    return node.inputs[0]


def _y(node):
    return node.outputs[0]


# -- unary -------------------------------------------------------------------------------
@defvjp("neg")
def _neg(b, node, g):
    return [b.neg(g)]


@defvjp("abs")
def _abs(b, node, g):
    return [b.mul(g, b.sign(_x(node)))]


@defvjp("sign", "floor", "ceil", "round")
def _piecewise_constant(b, node, g):
    return [None]  # derivative is zero almost everywhere, as in JAX


@defvjp("exp")
def _exp(b, node, g):
    return [b.mul(g, _y(node))]


@defvjp("log")
def _log(b, node, g):
    return [b.div(g, _x(node))]


@defvjp("sqrt")
def _sqrt(b, node, g):
    return [b.div(b.mul(g, const(b, 0.5, g)), _y(node))]


@defvjp("rsqrt")
def _rsqrt(b, node, g):  # d/dx x^-1/2 = -1/2 * y^3
    y = _y(node)
    return [b.mul(b.mul(g, const(b, -0.5, g)), b.mul(y, b.square(y)))]


@defvjp("square")
def _square(b, node, g):
    return [b.mul(g, b.mul(_x(node), const(b, 2, g)))]


@defvjp("reciprocal")
def _reciprocal(b, node, g):
    return [b.neg(b.mul(g, b.square(_y(node))))]


@defvjp("tanh")
def _tanh(b, node, g):
    return [b.mul(g, b.sub(const(b, 1, g), b.square(_y(node))))]


@defvjp("sigmoid")
def _sigmoid(b, node, g):
    y = _y(node)
    return [b.mul(g, b.mul(y, b.sub(const(b, 1, g), y)))]


@defvjp("relu")
def _relu(b, node, g):  # zero gradient at 0, as in JAX and TF; reads y so x's buffer can die early
    return [b.where(b.greater(_y(node), const(b, 0, g)), g, const(b, 0, g))]


@defvjp("erf")
def _erf(b, node, g):
    x = _x(node)
    return [b.mul(g, b.mul(const(b, 2 / math.sqrt(math.pi), g), b.exp(b.neg(b.square(x)))))]


@defvjp("softplus")
def _softplus(b, node, g):
    return [b.mul(g, b.sigmoid(_x(node)))]


@defvjp("sin")
def _sin(b, node, g):
    return [b.mul(g, b.cos(_x(node)))]


@defvjp("cos")
def _cos(b, node, g):
    return [b.neg(b.mul(g, b.sin(_x(node))))]


@defvjp("log1p")
def _log1p(b, node, g):
    return [b.div(g, b.add(_x(node), const(b, 1, g)))]


@defvjp("expm1")
def _expm1(b, node, g):
    return [b.mul(g, b.add(_y(node), const(b, 1, g)))]


# -- binary (gradients are summed back over broadcast axes) -----------------------------
def _both(b, node, ga, gb):
    a, c = node.inputs
    return [None if ga is None else unbroadcast(b, ga, a.type),
            None if gb is None else unbroadcast(b, gb, c.type)]


@defvjp("add")
def _add(b, node, g):
    return _both(b, node, g, g)


@defvjp("sub")
def _sub(b, node, g):
    return _both(b, node, g, b.neg(g))


@defvjp("mul")
def _mul(b, node, g):
    a, c = node.inputs
    return _both(b, node, b.mul(g, c), b.mul(g, a))


@defvjp("div")
def _div(b, node, g):
    c = node.inputs[1]
    ga = b.div(g, c)
    return _both(b, node, ga, b.neg(b.mul(ga, _y(node))))


@defvjp("pow")
def _pow(b, node, g):
    """d/da = b a^(b-1) (0 where b == 0); d/db = y log(a) (log taken as 0 where a == 0, as JAX)."""
    a, c = node.inputs
    zero, one = const(b, 0, g), const(b, 1, g)
    da = b.where(b.equal(c, zero), zero, b.mul(c, b.pow(a, b.sub(c, one))))
    safe_a = b.where(b.equal(a, zero), one, a)
    return _both(b, node, b.mul(g, da), b.mul(g, b.mul(_y(node), b.log(safe_a))))


@defvjp("maximum", "minimum")
def _max_min(b, node, g):
    """Ties split the gradient equally (0.5 each), which is what central differences measure."""
    a, c = node.inputs
    wins = b.greater(a, c) if node.op == "maximum" else b.less(a, c)
    share = b.add(as_float_mask(b, wins, g), b.mul(as_float_mask(b, b.equal(a, c), g), const(b, 0.5, g)))
    ga = b.mul(g, share)
    return _both(b, node, ga, b.sub(g, ga))


@defvjp("where")
def _where(b, node, g):
    cond, x, y = node.inputs
    zero = const(b, 0, g)
    return [None, unbroadcast(b, b.where(cond, g, zero), x.type), unbroadcast(b, b.where(cond, zero, g), y.type)]


@defvjp("cast")
def _cast(b, node, g):
    x = _x(node)
    if not x.dtype.is_float:
        return [None]  # integer and bool sources carry no gradient
    return [g if x.dtype == g.dtype else b.cast(g, dtype=x.dtype)]


@defvjp("stop_gradient")
def _stop_gradient(b, node, g):
    return [None]  # by definition: nothing flows back through it (Keras/JAX stop_gradient)
