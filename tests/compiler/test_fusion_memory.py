"""The fuse and plan-memory passes: which nodes fuse (as `fused` nodes in the IR), epilogues,
workspace reuse, and that fused graphs still compute what the reference interpreter computes."""
import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.ops.fused import computing_nodes
from kcompile.passes.fusion import fuse, fused_nodes
from kcompile.passes.memory import format_memory, plan_memory

from native_util import assert_native_matches, random_array


def _ops(node):
    return [n.op for n in computing_nodes(node.attrs["body"])]


def _kinds(g):
    return [n.attrs["kind"] for n in fused_nodes(g)]


def test_elementwise_chain_is_one_group():
    b = GraphBuilder("chain")
    x = b.input("x", TensorType(["N", 10]))
    y = b.exp(b.tanh(b.add(b.mul(x, x), b.constant(1.0))))
    g = fuse(b.build([y]))
    (node,) = g.nodes  # the constant 1.0 moved into the region: an immediate
    assert node.op == "fused" and node.attrs["kind"] == "loop" and _ops(node) == ["mul", "add", "tanh", "exp"]


def test_shared_values_outputs_and_smaller_shapes_stay_materialized():
    b = GraphBuilder("mixed")
    x = b.input("x", TensorType(["N", 6]))
    var = b.input("var", TensorType([6]))
    scale = b.rsqrt(b.add(var, b.constant(1e-3)))         # [6]: not recomputed per element of [N,6]
    shared = b.exp(x)                                      # used by two different consumers' groups
    out1 = b.mul(shared, scale)
    mid = b.relu(out1)                                     # a graph output in the middle of a chain
    out2 = b.sigmoid(b.add(mid, b.reduce_sum(shared, axes=(1,), keepdims=True)))
    g = fuse(b.build([mid, out2]))
    roots = {computing_nodes(n.attrs["body"])[-1].op if n.op == "fused" else n.op for n in g.nodes}
    assert {"rsqrt", "exp", "relu", "sigmoid"} <= roots, g
    rng = np.random.default_rng(0)
    assert_native_matches(b.build([mid, out2]), lambda n: [random_array(rng, (n, 6), np.float32),
                                                           random_array(rng, (6,), np.float32, 0.1, 2)],
                          rtol=2e-6)


def test_matmul_bias_activation_is_an_epilogue():
    rng = np.random.default_rng(1)
    b = GraphBuilder("dense")
    x = b.input("x", TensorType(["N", 9]))
    w = b.param("w", rng.standard_normal((9, 13)).astype(np.float32))
    bias = b.param("b", rng.standard_normal(13).astype(np.float32))
    y = b.tanh(b.add(b.matmul(x, w), bias))
    z = b.relu(b.add(b.matmul(y, b.param("w2", rng.standard_normal((13, 5)).astype(np.float32))),
                     b.param("b2", rng.standard_normal(5).astype(np.float32))))
    g = b.build([z])
    fused = fuse(g)
    first, second = fused_nodes(fused)
    assert _kinds(fused) == ["epilogue", "epilogue"] and [n.op for n in fused.nodes] == ["fused", "fused"]
    assert (first.attrs["in_kernel"], first.attrs["activation"]) == (1, "linear")  # the bias add; tanh after
    assert (second.attrs["in_kernel"], second.attrs["activation"]) == (2, "relu")
    planned = plan_memory(fused)
    assert set(planned.meta["memory"].offsets) == {first.outputs[0]}  # only the epilogue's result is stored
    assert_native_matches(g, lambda n: [random_array(rng, (n, 9), np.float32)], rtol=1e-5, atol=1e-5)


CLAIMED = {"bias_tanh": 1, "relu_then_bias": 1, "reuses_claimed_value": 1, "bias_relu_scale": 2}


@pytest.mark.parametrize("pattern", sorted(CLAIMED))
def test_kernels_claim_a_prefix_of_the_epilogue_and_codegen_runs_the_rest(pattern):
    rng = np.random.default_rng(9)
    b = GraphBuilder(pattern)
    x = b.input("x", TensorType(["N", 6]))
    y = b.matmul(x, b.param("w", rng.standard_normal((6, 11)).astype(np.float32)))
    bias = b.param("b", rng.standard_normal(11).astype(np.float32))
    if pattern == "bias_tanh":
        out = b.tanh(b.add(y, bias))
    elif pattern == "relu_then_bias":
        out = b.add(bias, b.relu(y))
    elif pattern == "reuses_claimed_value":
        t = b.add(y, bias)
        out = b.mul(b.relu(t), t)   # needs t after the relu: only the add may be claimed
    else:
        out = b.mul(b.relu(b.add(y, bias)), b.constant(0.5))
    g = b.build([out])
    (node,) = fused_nodes(fuse(g))
    assert node.attrs["kind"] == "epilogue" and node.attrs["in_kernel"] == CLAIMED[pattern]
    assert_native_matches(g, lambda n: [random_array(rng, (n, 6), np.float32)], rtol=1e-5, atol=1e-5)


def test_workspace_is_linear_in_batch_and_reuses_memory():
    b = GraphBuilder("stack")
    x = b.input("x", TensorType(["N", 64]))
    h = x
    for _ in range(6):
        h = b.softmax(h)  # not elementwise: every result needs a buffer
    g = b.build([b.reduce_sum(h, axes=(1,))])
    plan = plan_memory(fuse(g)).meta["memory"]
    row = 64 * 4
    assert plan.static_bytes == 0
    assert plan.batched_bytes_per_row == 2 * row  # six intermediates, two live at a time
    assert "workspace" in format_memory(plan_memory(fuse(g)))
    fn = compile_graph(g)
    assert fn.workspace_bytes(10) == 10 * 2 * row
    rng = np.random.default_rng(2)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 64), np.float32)], rtol=1e-5)


def test_views_share_storage_and_outputs_can_repeat():
    b = GraphBuilder("views")
    x = b.input("x", TensorType(["N", 2, 3]))
    flat = b.reshape(b.softmax(x), shape=("N", 6))
    y = b.softmax(flat)
    g = b.build([y, y, x, flat], ["y", "y_again", "x_back", "flat"])
    rng = np.random.default_rng(3)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 2, 3), np.float32)], rtol=2e-6)


def test_elementwise_producers_become_reduction_prologues():
    b = GraphBuilder("mse")
    pred = b.input("pred", TensorType(["N", 7, 3]))
    y = b.input("y", TensorType(["N", 7, 3]))
    sq = b.square(b.sub(pred, y))
    per_row = b.reduce_mean(sq, axes=(1, 2))
    total = b.reduce_max(b.mul(b.exp(pred), b.constant(0.5)), axes=(0, 1))  # kept inner axis
    g = b.build([per_row, total])
    planned = plan_memory(fuse(g))
    assert _kinds(planned) == ["prologue", "prologue"]
    assert len(planned.meta["memory"].offsets) == 0  # nothing but the outputs is ever stored
    rng = np.random.default_rng(4)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 7, 3), np.float32),
                                        random_array(rng, (n, 7, 3), np.float32)], rtol=2e-6, atol=1e-6)


def test_prologues_with_broadcast_leaves_like_batch_norm_statistics():
    b = GraphBuilder("bn")
    x = b.input("x", TensorType(["N", 5, 7]))
    mean = b.reduce_mean(x, axes=(0, 1))                          # [7]
    var = b.reduce_mean(b.square(b.sub(x, mean)), axes=(0, 1))    # prologue with a broadcast leaf
    rows = b.reduce_max(b.mul(x, b.reduce_sum(x, axes=(2,), keepdims=True)), axes=(2,))  # [N,5,1] leaf
    counts = b.reduce_sum(b.cast(b.greater(x, mean), dtype="i32"), axes=(1,))             # int prologue
    g = b.build([var, rows, counts])
    assert _kinds(fuse(g)).count("prologue") == 3
    rng = np.random.default_rng(6)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 5, 7), np.float32)], rtol=1e-5, atol=1e-6)


def test_plans_follow_values_so_a_rewritten_graph_is_refused_not_misplaced():
    from kcompile.compiler.codegen import generate
    from kcompile.compiler.target import host_target
    from kcompile.ir import Graph, Node

    b = GraphBuilder("stale")
    x = b.input("x", TensorType(["N", 3]))
    g = plan_memory(fuse(b.build([b.exp(b.softmax(b.softmax(x)))])))
    same_nodes = Graph(g.name, g.inputs, g.params, list(g.nodes), g.outputs, g.param_values, g.output_names, g.meta)
    generate({"forward": same_nodes}, "same", host_target())  # a new list of the same nodes: still planned
    subst, nodes = {}, []
    for n in g.nodes:  # a rewrite after plan-memory: every node anew, so no value has a place in the plan
        nodes.append(Node(n.op, [subst.get(v, v) for v in n.inputs], n.attrs, [v.type for v in n.outputs]))
        subst.update(zip(n.outputs, nodes[-1].outputs))
    rewritten = Graph(g.name, g.inputs, g.params, nodes, [subst[v] for v in g.outputs], g.param_values,
                      g.output_names, g.meta)
    with pytest.raises(ValueError, match="plan-memory"):
        generate({"forward": rewritten}, "stale", host_target())
