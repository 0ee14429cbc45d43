"""Constant folding, algebraic identities, CSE and DCE: the rewrite happens and outputs do not change."""
from collections import Counter

import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType, verify
from kcompile.passes import canonicalize, cse, dce, fold_constants, grad_graph, simplify
from kcompile.passes.canonicalize import MAX_FOLD_ELEMENTS
from kcompile.runtime.reference import run


def _ops(graph):
    return Counter(n.op for n in graph.nodes)


def _same_outputs(before, after, inputs):
    verify(after)
    for want, got in zip(run(before, inputs), run(after, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_fold_constants_evaluates_constant_subgraphs():
    b = GraphBuilder("fold")
    x = b.input("x", TensorType(("N", 3)))
    with b.location("scale"):
        k = b.mul(b.constant(np.arange(3, dtype=np.float32)), b.constant(2.0))
        k = b.exp(b.reshape(k, shape=(1, 3)))
    g = b.build([b.add(x, k)])
    out = fold_constants(g)
    assert _ops(out) == {"constant": 1, "add": 1}
    folded = out.nodes[0]
    assert folded.name == "scale"
    np.testing.assert_allclose(folded.attrs["value"], np.exp(2 * np.arange(3.0)).reshape(1, 3), rtol=1e-6)
    _same_outputs(g, out, [np.ones((2, 3), np.float32)])


def test_folding_is_bounded_and_leaves_splats_and_bad_indices_alone():
    b = GraphBuilder("nofold")
    big = b.exp(b.constant(np.zeros(MAX_FOLD_ELEMENTS + 1, np.float32)))
    splat = b.broadcast_to(b.constant(1.0), shape=(4, 4))
    bad = b.gather(b.constant(np.ones(3, np.float32)), b.constant(np.array([5], np.int64)))
    out = fold_constants(b.build([big, splat, bad]))
    assert _ops(out) == {"constant": 4, "exp": 1, "broadcast_to": 1, "gather": 1}


@pytest.mark.parametrize("make,expect", [
    (lambda b, x: b.mul(x, b.constant(1.0)), {}),
    (lambda b, x: b.mul(b.broadcast_to(b.constant(1.0), shape=("N", 3)), x), {}),
    (lambda b, x: b.add(x, b.broadcast_to(b.constant(0.0), shape=("N", 3))), {}),
    (lambda b, x: b.sub(x, b.constant(0.0)), {}),
    (lambda b, x: b.sub(b.constant(0.0), x), {"neg": 1}),
    (lambda b, x: b.div(x, b.constant(1.0)), {}),
    (lambda b, x: b.neg(b.neg(x)), {}),
    (lambda b, x: b.cast(x, dtype="f32"), {}),
    (lambda b, x: b.reshape(x, shape=("N", 3)), {}),
    (lambda b, x: b.reshape(b.reshape(b.expand_dims(x, axes=[1]), shape=("N", 3, 1)), shape=("N", 1, 3)),
     {"reshape": 1}),
    (lambda b, x: b.transpose(b.transpose(b.expand_dims(x, axes=[2]), perm=[0, 2, 1]), perm=[0, 2, 1]),
     {"expand_dims": 1}),
    (lambda b, x: b.slice(x, axes=[1], starts=[0], ends=[99]), {}),
    (lambda b, x: b.pad(x, pads=[0, 0, 0, 0]), {}),
    (lambda b, x: b.reduce_sum(b.expand_dims(x, axes=[2]), axes=[2], keepdims=True), {"expand_dims": 1}),
    (lambda b, x: b.concat(x, axis=1), {}),
    (lambda b, x: b.add(x, b.broadcast_to(b.reshape(b.broadcast_to(b.constant(2.0), shape=(3,)), shape=(1, 3)),
                                          shape=("N", 3))), {"add": 1, "broadcast_to": 1, "constant": 1}),
    (lambda b, x: b.add(x, b.broadcast_to(b.broadcast_to(b.exp(b.constant(np.ones(3, np.float32))), shape=(1, 3)),
                                          shape=("N", 3))), {"add": 1, "broadcast_to": 1, "constant": 1}),
])
def test_algebraic_identities(make, expect):
    b = GraphBuilder("ident")
    x = b.input("x", TensorType(("N", 3)))
    g = b.build([b.exp(make(b, x))])
    out = simplify(g)
    ops = _ops(out)
    ops.pop("exp")
    assert dict(ops) == expect
    _same_outputs(g, out, [np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)])


def test_identities_keep_broadcasting_results():
    """x + 0 is not x when the zero broadcasts x to a bigger shape."""
    b = GraphBuilder("keep")
    x = b.input("x", TensorType((3,)))
    g = b.build([b.add(x, b.broadcast_to(b.constant(0.0), shape=(2, 3)))])
    assert _ops(simplify(g))["add"] == 1


def test_cse_merges_equal_nodes_only():
    b = GraphBuilder("cse")
    x = b.input("x", TensorType(("N", 4)))
    counter = b.input("step", TensorType((), "i64"))
    e1, e2 = b.exp(x), b.exp(x)
    s1, s2 = b.reduce_sum(e1, axes=[1]), b.reduce_sum(e2, axes=[0])          # different attrs: kept apart
    c1, c2 = b.constant(np.arange(4, dtype=np.float32)), b.constant(np.arange(4, dtype=np.float32))
    r1 = b.random_uniform_like(x, counter, seed=1)
    r2 = b.random_uniform_like(x, counter, seed=2)                            # another seed: another mask
    g = b.build([b.add(e1, c1), b.add(e2, c2), s1, s2, r1, r2])
    out = cse(g)
    assert _ops(out) == {"exp": 1, "constant": 1, "add": 1, "reduce_sum": 2, "random_uniform_like": 2}
    assert out.outputs[0] is out.outputs[1]
    _same_outputs(g, out, [np.ones((2, 4), np.float32), np.array(7, np.int64)])


def test_dce_drops_unused_nodes_and_keeps_signature():
    b = GraphBuilder("dce")
    x = b.input("x", TensorType(("N", 2)))
    w = b.param("w", np.ones((2, 2), np.float32))
    with b.location("unused"):
        b.tanh(b.matmul(x, w))
    y = b.relu(x)
    g = b.build([y], ["y"])
    out = dce(g)
    assert _ops(out) == {"relu": 1}
    assert out.inputs == g.inputs and out.params == g.params and out.output_names == ("y",)
    assert out.param_values["w"] is g.param_values["w"]


def test_canonicalize_cleans_a_gradient_graph_without_changing_it():
    rng = np.random.default_rng(0)
    b = GraphBuilder("mlp")
    x = b.input("x", TensorType(("N", 4)))
    w = b.param("w", rng.normal(size=(4, 3)).astype(np.float32))
    bias = b.param("bias", rng.normal(size=3).astype(np.float32))
    with b.location("dense"):
        y = b.sigmoid(b.add(b.matmul(x, w), bias))
    g = grad_graph(b.build([b.reduce_mean(b.square(y))]), ["w", "bias"])
    out = canonicalize(g)
    assert len(out.nodes) < len(g.nodes)
    assert {n.name for n in out.nodes} >= {"dense", "dense/grad"}
    _same_outputs(g, out, [rng.normal(size=(5, 4)).astype(np.float32)])
    assert canonicalize(out).nodes == out.nodes  # a fixpoint: nothing left to rewrite


def test_per_head_bias_and_scalar_move_before_the_head_split():
    """add(reshape(x @ w, [N,T,H,D]), b[H,D]) * c -> reshape((x @ w + b') * c): the fuse pass then hands the
    bias to the matmul's kernel. A bias that also varies along T stays after the reshape."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("heads")
    x = b.input("x", TensorType(("N", 4, 6)))
    w = b.param("w", rng.standard_normal((6, 6)).astype(np.float32))
    heads = b.reshape(b.matmul(x, w), shape=("N", 4, 2, 3))
    y = b.mul(b.add(heads, b.param("b", rng.standard_normal((2, 3)).astype(np.float32))), b.constant(0.5))
    z = b.sub(b.reshape(b.matmul(x, w), shape=("N", 4, 2, 3)), b.param("bt", rng.standard_normal((4, 2, 3)).astype(np.float32)))
    u = b.mul(b.reshape(b.matmul(x, w), shape=("N", 4, 2, 3)), b.reshape(x, shape=("N", 4, 2, 3)))  # batch-sized c
    g = b.build([y, z, u])
    out = canonicalize(g)
    moved = [n for n in out.nodes if n.op in ("add", "mul")][:2]
    assert [n.outputs[0].type.shape for n in moved] == [("N", 4, 6)] * 2
    assert [n for n in out.nodes if n.op == "sub"][0].outputs[0].type.shape == ("N", 4, 2, 3)
    assert [n for n in out.nodes if n.op == "mul"][-1].outputs[0].type.shape == ("N", 4, 2, 3)
    _same_outputs(g, out, [rng.standard_normal((3, 4, 6)).astype(np.float32)])
