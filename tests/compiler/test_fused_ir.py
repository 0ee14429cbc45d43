"""Fusion as IR: `fused` nodes print and parse back, the verifier checks them, the reference
interpreter runs them like the unfused graph, and native code runs them like the reference."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcompile.ir import GraphBuilder, TensorType, VerificationError, parse_graph, print_graph, verify
from kcompile.ir.graph import Graph, Node
from kcompile.passes.fusion import fuse, fused_nodes
from kcompile.runtime.reference import run

from native_util import assert_native_matches, random_array
from test_random_graphs import Grower


def _model(seed=0):
    """Every kind of fused node: a dense epilogue, a loop with a broadcast leaf, a reduction prologue."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mixed")
    x = b.input("x", TensorType(["N", 6]))
    h = b.relu(b.add(b.matmul(x, b.param("w", rng.standard_normal((6, 8)).astype(np.float32))),
                     b.param("b", rng.standard_normal(8).astype(np.float32))))
    s = b.sigmoid(b.mul(h, b.param("scale", rng.standard_normal(8).astype(np.float32))))
    loss = b.reduce_mean(b.square(b.sub(s, b.constant(0.5))), axes=(1,))
    return b.build([b.exp(b.neg(s)), loss], ["y", "loss"])


def _inputs(n, seed=1):
    return [random_array(np.random.default_rng(seed + n), (n, 6), np.float32)]


def test_fused_graph_prints_and_parses_back():
    g = fuse(_model())
    assert sorted(n.attrs["kind"] for n in fused_nodes(g)) == ["epilogue", "loop", "prologue"]
    text = print_graph(g)
    assert "fused(" in text and 'kind="epilogue", bias=2, activation="relu", in_kernel=2' in text
    parsed = verify(parse_graph(text))
    assert print_graph(parsed) == text
    assert fuse(parsed).nodes and print_graph(fuse(parsed)) == text  # fusing again changes nothing


def test_fused_graph_runs_like_the_unfused_one_in_the_interpreter():
    g = _model()
    for n in (1, 4):
        for got, want in zip(run(fuse(g), _inputs(n)), run(g, _inputs(n))):
            np.testing.assert_array_equal(got, want)


def test_native_code_of_a_fused_graph_matches_the_reference():
    assert_native_matches(fuse(_model()), _inputs, rtol=1e-5, atol=1e-6)


def test_a_group_of_constants_keeps_an_input():
    b = GraphBuilder("consts")
    x = b.input("x", TensorType(["N", 4]))
    total = b.reduce_sum(b.exp(b.broadcast_to(b.constant(0.5), shape=("N", 4))), axes=(1,))
    g = b.build([b.add(total, b.reduce_sum(x, axes=(1,)))])
    (node,) = [n for n in fused_nodes(fuse(g)) if n.attrs["kind"] == "prologue"]
    assert len(node.inputs) == 1 and node.inputs[0].producer.op == "constant"
    assert_native_matches(g, lambda n: [random_array(np.random.default_rng(n), (n, 4), np.float32)], rtol=1e-6)


def _with_attrs(g: Graph, **changes) -> Graph:
    """g with the first fused node's attributes changed (no checks: that is the verifier's job)."""
    old, subst, nodes = fused_nodes(g)[0], {}, []
    for n in g.nodes:
        attrs = {**n.attrs, **changes} if n is old else n.attrs
        nodes.append(Node(n.op, [subst.get(v, v) for v in n.inputs], attrs, [v.type for v in n.outputs]))
        subst.update(zip(n.outputs, nodes[-1].outputs))
    return Graph(g.name, g.inputs, g.params, nodes, [subst.get(v, v) for v in g.outputs], g.param_values,
                 g.output_names)


def _dense(act="relu"):
    rng = np.random.default_rng(3)
    b = GraphBuilder("dense")
    x = b.input("x", TensorType(["N", 3]))
    y = b.add(b.matmul(x, b.param("w", rng.standard_normal((3, 4)).astype(np.float32))),
              b.param("b", rng.standard_normal(4).astype(np.float32)))
    return fuse(b.build([b.relu(y) if act == "relu" else b.tanh(y)]))


@pytest.mark.parametrize("changes,message", [
    ({"in_kernel": 1}, "in_kernel=1, but bias=2 and activation='relu' describe 2"),
    ({"bias": 0, "in_kernel": 2}, "the first epilogue node must add body input 0"),
    ({"bias": 7}, "bias=7 but the body has 3 inputs"),
    ({"kind": "loop"}, "a fused loop holds elementwise nodes"),
    ({"kind": "prologue"}, "a prologue's last node must be a reduction"),
])
def test_verifier_refuses_inconsistent_fused_nodes(changes, message):
    g = _dense()
    verify(g)
    with pytest.raises(VerificationError, match="fused") as info:
        verify(_with_attrs(g, **changes))
    assert message in str(info.value)


def test_verifier_refuses_a_body_that_does_not_match_the_inputs():
    g = _dense()
    body = fused_nodes(g)[0].attrs["body"]
    rb = GraphBuilder("other")
    x = rb.input("x0", TensorType(["N", 3]))
    wrong = rb.build([rb.matmul(x, rb.input("x1", TensorType([3, 4])))], ["y"])  # two inputs, not three
    with pytest.raises(VerificationError, match="body @other takes 2 input"):
        verify(_with_attrs(g, body=wrong, bias=-1, activation="linear", in_kernel=0))
    assert len(body.inputs) == 3


def test_fused_nodes_are_not_differentiable():
    from kcompile.passes.autodiff import grad_graph

    b = GraphBuilder("loss")
    x = b.input("x", TensorType([3]))
    g = fuse(b.build([b.reduce_sum(b.exp(b.neg(x)))]))
    with pytest.raises(Exception, match="fused"):
        grad_graph(g, wrt=["x"])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.data())
def test_fusing_random_graphs_keeps_them_valid_and_equal(data):
    """Outlined groups are convex (members' users all lie inside), so every fused graph verifies,
    round-trips its text, and the interpreter gives exactly the unfused graph's results."""
    g = Grower(data)
    for _ in range(data.draw(st.integers(2, 9))):
        try:
            g.step()
        except ValueError:
            continue
    graph = g.b.build(data.draw(st.lists(st.sampled_from(g.pool), min_size=1, max_size=3)))
    fused = verify(fuse(graph))
    assert print_graph(parse_graph(print_graph(fused))) == print_graph(fused)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((3, 3, 5)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    for got, want in zip(run(fused, inputs), run(graph, inputs)):
        np.testing.assert_array_equal(got, want)
