"""VJP of fake_quantize: TF's straight-through estimator (FakeQuantWithMinMaxVarsGradient).

dx = g inside the nudged range [nmin, nmax], 0 outside; dlo = sum of g where x < nmin and
dhi = sum of g where x > nmax (summed to lo's and hi's shape), so ranges can also learn.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir.ops.qat import expand

from . import defvjp
from ._emit import const, unbroadcast


@defvjp("fake_quantize")
def _fake_quantize(b, node, g):
    x, lo, hi = node.inputs
    _, nmin, nmax = expand(lambda op, *a: b.op(op, *a), lambda v: b.constant(v, dtype=x.dtype), x, lo, hi,
                           node.attrs["narrow"])
    zero = const(b, 0, g)
    inside = b.logical_and(b.greater_equal(x, nmin), b.less_equal(x, nmax))
    return [b.where(inside, g, zero),
            unbroadcast(b, b.where(b.less(x, nmin), g, zero), lo.type),
            unbroadcast(b, b.where(b.greater(x, nmax), g, zero), hi.type)]
