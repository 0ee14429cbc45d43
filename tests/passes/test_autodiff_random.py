"""Gradients of random compositions (shared values, broadcasting, layout and reductions) match finite differences."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType
from kc_gradcheck import check_graph_grads

SMOOTH = ["tanh", "sigmoid", "sin", "softplus", "exp", "square"]


def _step(b, rng, pool):
    """One random op on values drawn from the pool; every result has shape (N, 3) or (3,)."""
    a, c = pool[rng.integers(len(pool))], pool[rng.integers(len(pool))]
    choice = rng.integers(6)
    if choice == 0:
        return b.op(SMOOTH[rng.integers(len(SMOOTH))], b.mul(a, b.constant(0.5, dtype="f64")))
    if choice == 1:
        return b.op(["add", "sub", "mul"][rng.integers(3)], a, c)
    if choice == 2:
        return b.div(a, b.add(b.square(c), b.constant(1.0, dtype="f64")))
    if choice == 3 and a.type.rank == 2:
        if c.type.rank == 1:  # outer product c c^T
            w = b.mul(b.expand_dims(c, axes=[1]), b.expand_dims(c, axes=[0]))
        else:                 # c^T c, a contraction over the batch
            w = b.reduce_mean(b.expand_dims(b.matmul(c, c, transpose_a=True), axes=[0]), axes=[0])
        return b.matmul(a, b.mul(w, b.constant(0.3, dtype="f64")))
    if choice == 4 and a.type.rank == 2:
        pair = b.concat(b.expand_dims(a, axes=[2]), b.expand_dims(b.mul(c, a), axes=[2]), axis=2)
        return b.reduce_max(pair, axes=[2])
    return b.softmax(b.add(a, c))


@pytest.mark.parametrize("seed", range(20))
def test_random_composition_gradients(seed):
    rng = np.random.default_rng(seed)
    b = GraphBuilder(f"random{seed}")
    x = b.input("x", TensorType(("N", 3), "f64"))
    v = b.input("v", TensorType((3,), "f64"))
    pool = [x, v]
    for _ in range(8):
        pool.append(_step(b, rng, pool))
    loss = b.reduce_sum(b.mul(pool[-1], pool[-2]))
    for extra in pool[-4:-2]:  # several uses of shared values on the way to the loss
        loss = b.add(loss, b.reduce_mean(extra))
    graph = b.build([loss])
    arrays = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    check_graph_grads(graph, arrays, ["x", "v"], rtol=1e-5, atol=1e-6)
