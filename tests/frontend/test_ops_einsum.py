"""kc.ops.einsum (lowered to transposes, reshapes and one batched matmul per pair), tile, cumsum, top_k,
triu/tril, stop_gradient and cond: eager and traced (batch N) against NumPy, natively too, and errors."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.jit import compile_graph
from kcompile.frontend import tensor as T
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run

ops = kc.ops
RNG = np.random.default_rng(0)

EINSUM = [  # (equation, shapes; operands led by the first label are batched when traced)
    ("abc,cde->abde", [(3, 5, 4), (4, 2, 3)]),          # MHA query/key/value projection
    ("abcd,cde->abe", [(3, 5, 2, 3), (2, 3, 4)]),       # MHA output projection
    ("aecd,abcd->acbe", [(3, 6, 2, 3), (3, 5, 2, 3)]),  # MHA scores (key, query)
    ("acbe,aecd->abcd", [(3, 2, 5, 6), (3, 6, 2, 3)]),  # MHA combine (scores, value)
    ("ij,jk->ik", [(4, 3), (3, 5)]),
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)]),
    ("bi,bi->b", [(3, 4), (3, 4)]),
    ("bij->bji", [(2, 3, 4)]),
    ("bij->b", [(2, 3, 4)]),
    ("bi,j->bij", [(3, 4), (5,)]),
    ("...ij,jk->...ik", [(2, 3, 4), (4, 5)]),
    ("bij,jk,bkl->bil", [(2, 3, 4), (4, 5), (2, 5, 2)]),
    ("bij,bjk", [(2, 3, 4), (2, 4, 5)]),                # implicit output: "ik" (b summed)
    ("bxi,bxi->bx", [(2, 1, 4), (2, 3, 4)]),            # size-1 broadcast on a batch label
]


def _traced(fn, arrays, batched=(0,)):
    b = GraphBuilder("t")
    ctx = T.TraceContext(b)
    xs = [b.input(f"x{i}", TensorType((("N",) + a.shape[1:]) if i in batched else a.shape))
          for i, a in enumerate(arrays)]
    with T.tracing(ctx):
        out = fn(*[T.KTensor(value=x, trace=ctx) for x in xs])
    outs = out if isinstance(out, tuple) else (out,)
    return b.build([T.traced_value(ctx, o) for o in outs])


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e for e, _ in EINSUM])
def test_einsum_matches_numpy(eq, shapes):
    arrays = [RNG.standard_normal(s).astype(np.float32) for s in shapes]
    want = np.einsum(eq, *arrays)
    np.testing.assert_allclose(ops.einsum(eq, *arrays).numpy(), want, rtol=1e-5, atol=1e-5)
    lead = eq[0]
    batched = tuple(i for i, ins in enumerate(eq.split("->")[0].split(",")) if ins[:1] == lead) \
        if lead in "ab" and "->" in eq else ()
    g = _traced(lambda *xs: ops.einsum(eq, *xs), arrays, batched)
    np.testing.assert_allclose(run(g, arrays)[0], want, rtol=1e-5, atol=1e-5)
    assert {n.op for n in g.nodes} <= {"matmul", "transpose", "reshape", "reduce_sum", "param"}


def test_einsum_native_attention_contractions():
    q, k = RNG.standard_normal((4, 7, 2, 3)).astype(np.float32), RNG.standard_normal((4, 5, 2, 3)).astype(np.float32)
    g = _traced(lambda a, b: ops.einsum("aecd,abcd->acbe", b, a), [q, k], batched=(0, 1))
    assert sum(n.op == "matmul" for n in g.nodes) == 1
    np.testing.assert_allclose(compile_graph(g)([q, k])[0], np.einsum("aecd,abcd->acbe", k, q), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eq,shapes,match", [
    ("ii->i", [(3, 3)], "diagonal"),
    ("ij,jk->ik", [(3, 4), (5, 6)], "label 'j' has size 4 in one operand and 5"),
    ("ij,jk->ik", [(3, 4)], "names 2 operand"),
    ("ij->iz", [(3, 4)], "output labels"),
    ("ijk->ij", [(3, 4)], "rank 2"),
])
def test_einsum_errors(eq, shapes, match):
    with pytest.raises(ValueError, match=match):
        ops.einsum(eq, *[np.ones(s, np.float32) for s in shapes])


def test_einsum_refuses_to_move_or_sum_the_batch():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="summing over the batch"):
        _traced(lambda a, b: ops.einsum("bi,bj->ij", a, b), [x, x], batched=(0, 1))
    with pytest.raises(ValueError, match="move the batch"):
        _traced(lambda a: ops.einsum("bi->ib", a), [x])


@pytest.mark.parametrize("reps", [(1, 3), 2, (2, 1, 2), (1, 1)])
def test_tile(reps):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.tile(x, reps).numpy(), np.tile(x, reps))
    if np.ndim(reps) and len(reps) == 2:
        np.testing.assert_array_equal(run(_traced(lambda t: ops.tile(t, reps), [x]), [x])[0], np.tile(x, reps))


def test_tile_of_the_batch_axis_is_refused():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="batch dimension"):
        _traced(lambda t: ops.tile(t, (2, 1)), [x])


def test_cumsum_top_k_triangles():
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(ops.cumsum(x, axis=1).numpy(), np.cumsum(x, 1), rtol=1e-6)
    np.testing.assert_allclose(ops.cumsum(x).numpy(), np.cumsum(x), rtol=1e-5, atol=1e-6)
    assert ops.cumsum(np.array([True, False, True])).numpy().tolist() == [1, 1, 2]
    vals, idx = ops.top_k(x, 2)
    np.testing.assert_array_equal(idx.numpy(), np.argsort(-x, axis=-1)[:, :2])
    np.testing.assert_array_equal(vals.numpy(), np.sort(x, axis=-1)[:, ::-1][:, :2])
    np.testing.assert_array_equal(ops.triu(x, 1).numpy(), np.triu(x, 1))
    np.testing.assert_array_equal(ops.tril(x).numpy(), np.tril(x))


def test_stop_gradient_in_a_gradient_tape():
    x = kc.Variable(np.array([1.0, 2.0, 3.0], np.float32))
    with kc.GradientTape() as tape:
        y = ops.sum(ops.multiply(x, ops.stop_gradient(ops.square(x))))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.array([1.0, 4.0, 9.0]), rtol=1e-6)


def test_cond_on_static_predicates_and_refused_on_traced():
    assert ops.cond(True, lambda: 1, lambda: 2) == 1
    assert ops.cond(ops.convert_to_tensor(np.array(False)), lambda: 1, lambda: 2) == 2
    with pytest.raises(ValueError, match="static predicate"):
        _traced(lambda t: ops.cond(ops.sum(t) > 0, lambda: t, lambda: -t), [np.ones((2, 3), np.float32)])


def test_swapaxes_moveaxis():
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(ops.swapaxes(x, 0, -1).numpy(), np.swapaxes(x, 0, -1))
    np.testing.assert_array_equal(ops.moveaxis(x, 0, 2).numpy(), np.moveaxis(x, 0, 2))


@pytest.mark.parametrize("kwargs", [{}, {"is_causal": True}, {"mask": "random", "scale": 0.3}, {"bias": True}])
def test_dot_product_attention_matches_keras(kwargs):
    import os
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    q, k, v = (RNG.standard_normal(s).astype(np.float32) for s in ((2, 5, 2, 3), (2, 6, 2, 3), (2, 6, 2, 3)))
    kw = dict(kwargs)
    if kw.get("mask") == "random":
        kw["mask"] = RNG.random((2, 2, 5, 6)) < 0.6
        kw["mask"][0, 0, 1] = False   # a wholly masked row
    if kw.get("bias"):
        kw["bias"] = RNG.standard_normal((1, 2, 5, 6)).astype(np.float32)
    got = ops.dot_product_attention(q, k, v, **kw).numpy()
    want = np.asarray(keras.ops.dot_product_attention(q, k, v, **kw))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_where_broadcasts_and_refuses_the_one_argument_form():
    c = np.array([[True], [False]])
    np.testing.assert_array_equal(ops.where(c, np.arange(3.0), -1.0).numpy(), np.where(c, np.arange(3.0), -1.0))
    with pytest.raises(ValueError, match="data-dependent shape"):
        ops.where(c)
