"""VJP of matmul, for every combination of transposes, with batch broadcasting summed back."""
from __future__ import annotations

from . import defvjp
from ._emit import unbroadcast

# (transpose_a, transpose_b) -> how to form (da, db) from g and the operands A, B:
# each entry is (left, right, transpose_left, transpose_right) naming the matmul to emit.
_MATMUL_VJPS = {
    (False, False): (("g", "B", False, True), ("A", "g", True, False)),   # y = A B
    (False, True): (("g", "B", False, False), ("g", "A", True, False)),   # y = A B^T
    (True, False): (("B", "g", False, True), ("A", "g", False, False)),   # y = A^T B
    (True, True): (("B", "g", True, True), ("g", "A", True, True)),       # y = A^T B^T
}


@defvjp("matmul")
def _matmul(b, node, g):
    a, c = node.inputs
    operands = {"g": g, "A": a, "B": c}
    plans = _MATMUL_VJPS[(node.attrs["transpose_a"], node.attrs["transpose_b"])]
    grads = []
    for target, (left, right, tl, tr) in zip((a, c), plans):
        prod = b.matmul(operands[left], operands[right], transpose_a=tl, transpose_b=tr)
        grads.append(unbroadcast(b, prod, target.type))
    return grads
