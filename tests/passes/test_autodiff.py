"""backprop / grad_graph as a whole: second order, a small MLP, tie conventions, errors, pruning."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType, verify
from kcompile.passes import GradientError, backprop, grad_graph
from kcompile.runtime.reference import run
from kc_gradcheck import check_graph_grads, check_second_order, sample


# -- second order ------------------------------------------------------------------------
def _tanh_loss(b, x):
    return b.reduce_sum(b.tanh(b.mul(x, x)))


def _mul_loss(b, x):
    return b.reduce_sum(b.mul(b.mul(x, x), b.sin(x)))


def _matmul_loss(b, x):  # x (3, 3): sum((x @ x)^2)
    return b.reduce_sum(b.square(b.matmul(x, x)))


def _softmax_loss(b, x):
    w = b.constant(np.linspace(-1, 2, 12).reshape(3, 4), dtype="f64")
    return b.reduce_sum(b.mul(b.softmax(x), w))


def _conv2d_loss(b, x):  # x (2, 4, 5, 2) used as both image and (after a slice) its own kernel
    w = b.slice(x, axes=[0, 1, 2], starts=[0, 0, 0], ends=[1, 2, 2])   # (1, 2, 2, 2)
    w = b.reshape(w, shape=(2, 2, 2, 1))
    return b.reduce_sum(b.square(b.conv2d(x, w, padding="same")))


@pytest.mark.parametrize("build,shape", [(_tanh_loss, ("N", 4)), (_mul_loss, (2, 3)), (_matmul_loss, (3, 3)),
                                         (_softmax_loss, (3, 4)), (_conv2d_loss, (2, 4, 5, 2))])
def test_second_order_matches_finite_differences(build, shape):
    check_second_order(build, shape)


def test_grad_graph_of_grad_graph():
    """f(x) = x^3 tanh(x) on a scalar: grad_graph twice gives f''(x)."""
    b = GraphBuilder("f")
    x = b.input("x", TensorType((), "f64"))
    b_out = b.mul(b.mul(x, b.square(x)), b.tanh(x))
    g1 = grad_graph(b.build([b_out], ["f"]), ["x"])
    g2 = grad_graph(g1, ["x"], output=1)
    assert list(g2.output_names) == ["f", "grad:x", "grad:grad:x/x"]
    xv = np.array(0.7)
    t = np.tanh(xv)
    f2 = 6 * xv * t + 6 * xv ** 2 * (1 - t ** 2) + xv ** 3 * (-2 * t * (1 - t ** 2))
    np.testing.assert_allclose(run(g2, [xv])[2], f2, rtol=1e-12)


# -- a 2-layer MLP with softmax cross-entropy built from ops ---------------------------------
def _mlp(rng):
    b = GraphBuilder("mlp")
    x = b.input("x", TensorType(("N", 5), "f64"))
    labels = b.input("labels", TensorType(("N",), "i64"))
    params = {"w1": rng.normal(size=(5, 7)), "b1": rng.normal(size=7) * 0.1,
              "w2": rng.normal(size=(7, 3)), "b2": rng.normal(size=3) * 0.1}
    p = {k: b.param(k, v) for k, v in params.items()}
    with b.location("dense_1"):
        h = b.relu(b.add(b.matmul(x, p["w1"]), p["b1"]))
    with b.location("dense_2"):
        logits = b.add(b.matmul(h, p["w2"]), p["b2"])
    with b.location("loss"):
        logp = b.log_softmax(logits)
        picked = b.reduce_sum(b.mul(logp, b.one_hot(labels, depth=3, dtype="f64")), axes=[1])
        loss = b.neg(b.reduce_mean(picked))
    return b.build([loss, logits], ["loss", "logits"])


def test_mlp_cross_entropy_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    graph = _mlp(rng)
    x, labels = sample("f", (4, 5), rng), sample("int3", (4,), rng)
    g = grad_graph(graph, ["w1", "b1", "w2", "b2"])
    grads = dict(zip(g.output_names, run(g, [x, labels])))
    for name in ["w1", "b1", "w2", "b2"]:
        def loss(value, name=name):
            return float(run(graph, [x, labels], {name: value})[0])
        want = _fd_param(loss, graph.param_values[name])
        np.testing.assert_allclose(grads[f"grad:{name}"], want, rtol=1e-5, atol=1e-7, err_msg=name)
    assert {n.name for n in g.nodes} >= {"dense_1/grad", "dense_2/grad", "loss/grad"}


def test_float32_gradients_agree_with_float64():
    """The rules emit constants in the operands' dtype, so an f32 graph differentiates in f32."""
    rng = np.random.default_rng(5)
    g64 = _mlp(rng)
    b = GraphBuilder("mlp32")
    x = b.input("x", TensorType(("N", 5), "f32"))
    labels = b.input("labels", TensorType(("N",), "i64"))
    p = {k: b.param(k, v.astype(np.float32)) for k, v in g64.param_values.items()}
    h = b.relu(b.add(b.matmul(x, p["w1"]), p["b1"]))
    logp = b.log_softmax(b.add(b.matmul(h, p["w2"]), p["b2"]))
    loss = b.neg(b.reduce_mean(b.reduce_sum(b.mul(logp, b.one_hot(labels, depth=3)), axes=[1])))
    g32 = grad_graph(b.build([loss]), list(p))
    x_v, labels_v = sample("f", (6, 5), rng), sample("int3", (6,), rng)
    got = run(g32, [x_v.astype(np.float32), labels_v])[1:]
    want = run(grad_graph(g64, list(p)), [x_v, labels_v])[2:]
    for a, w in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-5)


def _fd_param(f, value, eps=1e-6):
    value = value.copy()
    out = np.zeros_like(value)
    for i in np.ndindex(value.shape):
        old = value[i]
        value[i] = old + eps
        up = f(value)
        value[i] = old - eps
        out[i] = (up - f(value)) / (2 * eps)
        value[i] = old
    return out


def test_gradient_wrt_input_and_intermediate():
    rng = np.random.default_rng(2)
    b = GraphBuilder("g")
    x = b.input("x", TensorType(("N", 3), "f64"))
    h = b.exp(x)
    y = b.reduce_sum(b.mul(h, h))
    gx, gh = backprop(b, y, [x, h])
    graph = b.build([y, gx, gh])
    xv = rng.normal(size=(4, 3))
    _, gxv, ghv = run(graph, [xv])
    np.testing.assert_allclose(ghv, 2 * np.exp(xv), rtol=1e-12)
    np.testing.assert_allclose(gxv, 2 * np.exp(2 * xv), rtol=1e-12)
    check_graph_grads(b.build([y]), [xv], ["x"])


def test_vjp_with_cotangent_and_unrelated_value_gets_zeros():
    b = GraphBuilder("vjp")
    x = b.input("x", TensorType(("N", 3), "f64"))
    unrelated = b.input("u", TensorType((2,), "f32"))
    y = b.mul(x, b.constant(3.0, dtype="f64"))
    dy = b.input("dy", TensorType(("N", 3), "f64"))
    gx, gu = backprop(b, y, [x, unrelated], dy=dy)
    assert gu.type == unrelated.type
    out = run(b.build([gx, gu]), [np.ones((2, 3)), np.ones(2, np.float32), np.full((2, 3), 2.0)])
    np.testing.assert_array_equal(out[0], np.full((2, 3), 6.0))
    np.testing.assert_array_equal(out[1], np.zeros(2, np.float32))


# -- conventions -----------------------------------------------------------------------------
def _grad_of(build, xv):
    b = GraphBuilder("t")
    x = b.input("x", TensorType(xv.shape, "f64"))
    (g,) = backprop(b, build(b, x), [x])
    return run(b.build([g]), [xv])[0]


def test_ties_split_the_gradient_equally():
    """reduce_max/maximum: k tied maxima each get 1/k (for k = 2 this is what central differences give)."""
    xv = np.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_allclose(_grad_of(lambda b, x: b.reduce_max(x), xv), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(_grad_of(lambda b, x: b.reduce_min(b.neg(x)), xv), [0, -0.5, -0.5, 0])
    np.testing.assert_allclose(_grad_of(lambda b, x: b.reduce_sum(b.maximum(x, x)), xv), np.ones(4))
    three = np.array([2.0, 2.0, 2.0])
    np.testing.assert_allclose(_grad_of(lambda b, x: b.reduce_max(x), three), np.full(3, 1 / 3))


def test_max_pool_routes_to_first_maximum():
    xv = np.array([1.0, 4.0, 4.0, 0.0]).reshape(1, 2, 2, 1)
    g = _grad_of(lambda b, x: b.reduce_sum(b.max_pool2d(x, pool_size=[2, 2], strides=[2, 2])), xv)
    np.testing.assert_array_equal(g.reshape(-1), [0, 1, 0, 0])


def test_cast_gradient_converts_back_and_stops_at_integers():
    b = GraphBuilder("cast")
    x = b.input("x", TensorType((3,), "f64"))
    w = b.constant(np.array([1.5, -2.0, 0.25], np.float32))
    to_f32 = b.reduce_sum(b.mul(b.cast(x, dtype="f32"), w))
    through_int = b.reduce_sum(b.cast(b.cast(x, dtype="i32"), dtype="f32"))
    (g,) = backprop(b, b.add(to_f32, through_int), [x])
    assert g.type == x.type
    np.testing.assert_array_equal(run(b.build([g]), [np.array([0.5, 1.5, -3.0])])[0], [1.5, -2.0, 0.25])


# -- errors ------------------------------------------------------------------------------------
def test_gradient_through_non_differentiable_op_names_it():
    b = GraphBuilder("bad")
    x = b.input("x", TensorType((3, 4), "f64"))
    with b.location("product"):
        p = b.reduce_prod(x, axes=[1])
    with pytest.raises(GradientError, match=r"node 'product' \(reduce_prod\).*not differentiable"):
        backprop(b, b.reduce_sum(p), [x])


def test_integer_paths_need_no_gradient():
    """argmax/one_hot/comparisons carry no gradient, so no error: only the float path counts."""
    b = GraphBuilder("ok")
    x = b.input("x", TensorType((3, 4), "f64"))
    mask = b.one_hot(b.argmax(x, axis=1), depth=4, dtype="f64")
    y = b.reduce_sum(b.mul(x, mask))
    (g,) = backprop(b, y, [x])
    xv = np.random.default_rng(3).normal(size=(3, 4))
    np.testing.assert_array_equal(run(b.build([g]), [xv])[0], np.eye(4)[np.argmax(xv, axis=1)])


def test_bad_requests_are_clear_errors():
    b = GraphBuilder("bad")
    x = b.input("x", TensorType(("N", 3), "f64"))
    with pytest.raises(GradientError, match="must be a scalar"):
        backprop(b, b.exp(x), [x])
    graph = b.build([b.reduce_sum(x)])
    with pytest.raises(GradientError, match="'nope' is not a parameter or input"):
        grad_graph(graph, ["nope"])
    with pytest.raises(GradientError, match="must be an f32/f64 scalar"):
        grad_graph(b.build([x]), ["x"])


# -- the emitted graph ---------------------------------------------------------------------------
def test_only_requested_gradients_are_emitted():
    """Asking for d/dw of x @ w must not compute d/dx (that matmul is pruned)."""
    b = GraphBuilder("prune")
    x = b.input("x", TensorType(("N", 4), "f32"))
    w = b.param("w", np.ones((4, 2), np.float32))
    graph = b.build([b.reduce_sum(b.matmul(x, w))])
    g = grad_graph(graph, ["w"])
    verify(g)
    assert [n.op for n in g.nodes].count("matmul") == 2
    assert g.param_values["w"] is not None and g.inputs == graph.inputs and g.params == graph.params


def test_random_values_depend_on_no_input_values():
    """random_uniform_like reads only x's shape: x * u has d/dx = u, with no error."""
    b = GraphBuilder("noise")
    x = b.input("x", TensorType(("N", 3), "f32"))
    step = b.input("step", TensorType((), "i64"))
    u = b.random_uniform_like(x, step, seed=3)
    (g,) = backprop(b, b.reduce_sum(b.mul(x, u)), [x])
    uv, gv = run(b.build([u, g]), [np.ones((2, 3), np.float32), np.array(5, np.int64)])
    np.testing.assert_array_equal(gv, uv)


def test_backward_nodes_are_named_after_their_forward_node():
    b = GraphBuilder("names")
    x = b.input("x", TensorType(("N", 3), "f64"))
    with b.location("act"):
        y = b.reduce_sum(b.tanh(x))
    with b.location("train_step"):
        backprop(b, y, [x])
    grad_nodes = b.nodes[2:]
    assert grad_nodes and {n.name for n in grad_nodes} <= {"act/grad", "train_step"}


def test_gradient_graph_prints_and_parses_back():
    from kcompile.ir import parse_graph, print_graph

    rng = np.random.default_rng(4)
    g = grad_graph(_mlp(rng), ["w1", "b2"])
    text = print_graph(g)
    again = parse_graph(text)
    assert print_graph(again) == text
    x, labels = sample("f", (3, 5), rng), sample("int3", (3,), rng)
    for want, got in zip(run(g, [x, labels]), run(again, [x, labels], g.param_values)):
        np.testing.assert_array_equal(got, want)


def test_gradient_of_an_unrelated_output_emits_only_zeros():
    b = GraphBuilder("unrelated")
    x = b.input("x", TensorType(("N", 3), "f64"))
    w = b.param("w", np.ones(3))
    y = b.reduce_sum(b.exp(x))
    before = len(b.nodes)
    (gw,) = backprop(b, y, [w])
    assert [n.op for n in b.nodes[before:]] == ["constant", "broadcast_to"]
    np.testing.assert_array_equal(run(b.build([gw]), [np.ones((2, 3))])[0], np.zeros(3))
