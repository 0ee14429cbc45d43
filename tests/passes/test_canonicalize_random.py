"""Canonicalization on random graphs (constants, identities, duplicates, dead ends) keeps every output."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType, verify
from kcompile.passes import canonicalize
from kcompile.runtime.reference import run

UNARY = ["neg", "exp", "tanh", "square", "abs", "sigmoid"]
BINARY = ["add", "sub", "mul", "maximum"]


def _leaf(b, rng, x, shape):
    """An operand of the current shape: x, a constant, or a splat of 0 or 1 (to feed the identities)."""
    kind = rng.integers(4)
    if kind == 0:
        return x
    if kind == 1:
        return b.constant(rng.normal(size=shape).astype(np.float32))
    splat = b.constant(np.float32(rng.integers(2)))
    return splat if rng.integers(2) else b.broadcast_to(splat, shape=shape)


def _random_graph(seed):
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"random{seed}")
    x = b.input("x", TensorType((2, 3)))
    values = [x, b.constant(rng.normal(size=(2, 3)).astype(np.float32))]
    for _ in range(12):
        v = values[rng.integers(len(values))]
        choice = rng.integers(5)
        if choice == 0:
            v = b.op(UNARY[rng.integers(len(UNARY))], v)
        elif choice == 1:
            v = b.op(BINARY[rng.integers(len(BINARY))], v, _leaf(b, rng, values[rng.integers(len(values))], (2, 3)))
        elif choice == 2:
            v = b.reshape(b.reshape(v, shape=(3, 2)), shape=(2, 3))
        elif choice == 3:
            v = b.transpose(b.transpose(v, perm=[1, 0]), perm=[1, 0])
        else:
            v = b.op(UNARY[rng.integers(len(UNARY))], values[-1])  # often a duplicate of an earlier node
        values.append(v)
    return b.build(values[-3:])


@pytest.mark.parametrize("seed", range(40))
def test_canonicalize_preserves_outputs_of_random_graphs(seed):
    g = _random_graph(seed)
    out = canonicalize(g)
    verify(out)
    assert len(out.nodes) <= len(g.nodes)
    assert canonicalize(out).nodes == out.nodes  # idempotent: one walk reaches the fixpoint
    xv = np.random.default_rng(100 + seed).normal(size=(2, 3)).astype(np.float32)
    with np.errstate(all="ignore"):  # exp chains may overflow to inf: both sides must agree on it
        pairs = list(zip(run(g, [xv]), run(out, [xv])))
    for want, got in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not any(n.op in ("reshape", "transpose") for n in out.nodes if n.inputs and n.inputs[0].producer
                   and n.inputs[0].producer.op == n.op)  # chains collapsed
