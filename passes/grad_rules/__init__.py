"""The table of vector-Jacobian products, one rule per differentiable op (JAX's primitive_transposes).

A rule is `rule(b, node, g) -> [Value | None per input]`: it emits, through the GraphBuilder `b`,
the cotangent of each input of `node` given `g`, the cotangent of its output (a list with one
entry per output for multi-output ops). None means "no gradient" (integer inputs, or ops such as
floor whose derivative is zero almost everywhere), so nothing flows further back from there.

Conventions where the derivative is not unique (all match central finite differences):
- maximum/minimum and reduce_max/reduce_min split the gradient equally among tied extremes;
- max pooling routes each window's gradient to its first maximum (row-major), as max_pool2d_grad;
- relu'(0) = 0; sign, floor, ceil and round have zero gradient; abs'(0) = 0;
- pow: d/da is 0 where b == 0, and d/db uses log(a) taken as 0 where a == 0 (as JAX).
"""
from __future__ import annotations

from typing import Callable

GRADIENT_RULES: dict[str, Callable] = {}


def defvjp(*op_names: str):
    """Register the decorated function as the VJP rule of each named op."""
    def register(rule):
        for name in op_names:
            if name in GRADIENT_RULES:
                raise ValueError(f"gradient rule for op '{name}' is registered twice")
            GRADIENT_RULES[name] = rule
        return rule
    return register


from . import elementwise, reduce, linalg, shape, nn, control  # noqa: E402,F401  (fill the table)
from . import qat  # noqa: E402,F401  (fake_quantize)
from . import along_axis  # noqa: E402,F401  (cumsum, top_k)
from . import image  # noqa: E402,F401  (resize)
from . import collective  # noqa: E402,F401  (cross_process_sum)
