"""Finite-difference checking of symbolic gradients on the reference interpreter (float64)."""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes import backprop, grad_graph
from kcompile.runtime.reference import run

BATCH = 3        # the value of the symbolic batch dimension N in these tests
EPS = 1e-6       # central-difference step
RTOL, ATOL = 1e-5, 1e-7


def sample(kind: str, shape, rng) -> np.ndarray:
    """Random test data: 'f' normal, 'pos' in [0.5, 2), 'int<K>' in [0, K), 'bool'."""
    shape = tuple(BATCH if isinstance(d, str) else d for d in shape)
    if kind == "f":
        return rng.normal(size=shape)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, size=shape)
    if kind == "bool":
        return rng.random(shape) < 0.5
    if kind.startswith("int"):
        return rng.integers(0, int(kind[3:]), size=shape).astype(np.int64)
    raise ValueError(f"unknown sample kind {kind!r}")


def _dtype(kind: str) -> str:
    return "bool" if kind == "bool" else "i64" if kind.startswith("int") else "f64"


def op_loss_graph(op: str, specs, attrs):
    """loss = sum_i sum(out_i * w_i) with random cotangent weights w_i given as inputs."""
    b = GraphBuilder(op)
    xs = [b.input(f"x{i}", TensorType(shape, _dtype(kind))) for i, (shape, kind) in enumerate(specs)]
    outs = b.op(op, *xs, **attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    # integer outputs (top_k's indices) carry no gradient and stay out of the loss
    terms = [b.reduce_sum(b.mul(o, b.input(f"w{i}", o.type))) for i, o in enumerate(outs) if o.dtype.is_float]
    loss = terms[0]
    for t in terms[1:]:
        loss = b.add(loss, t)
    return b.build([loss])


def finite_difference(f, arrays: list, i: int) -> np.ndarray:
    """d f(arrays) / d arrays[i] by central differences, element by element."""
    x = arrays[i]
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + EPS
        up = f(arrays)
        x[idx] = old - EPS
        down = f(arrays)
        x[idx] = old
        grad[idx] = (up - down) / (2 * EPS)
    return grad


def check_graph_grads(graph, arrays: list, wrt: list[str], rtol=RTOL, atol=ATOL):
    """Compare grad_graph's gradients of output 0 with central differences on `arrays` (inputs in order)."""
    grads = run(grad_graph(graph, wrt), arrays)[len(graph.outputs):]
    names = graph.input_names()
    loss = lambda arrs: float(run(graph, arrs)[0])  # noqa: E731
    for name, got in zip(wrt, grads):
        want = finite_difference(loss, arrays, names.index(name))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"gradient w.r.t. {name}")


def check_op(op: str, specs, attrs=None, seed=0):
    """Finite-difference check of op's VJP w.r.t. every float input."""
    rng = np.random.default_rng(seed)
    graph = op_loss_graph(op, specs, attrs or {})
    arrays = [sample(kind, shape, rng) for shape, kind in specs]
    arrays += [sample("f", v.type.shape, rng) for v in graph.inputs[len(specs):]]
    wrt = [f"x{i}" for i, (_, kind) in enumerate(specs) if _dtype(kind) == "f64"]
    check_graph_grads(graph, arrays, wrt)


def check_second_order(build, shape, kind="f", seed=0, rtol=RTOL, atol=ATOL):
    """For loss = build(b, x): backprop twice; d/dx <grad(x), v> must match differences of <grad, v>."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("second_order")
    x = b.input("x", TensorType(shape, "f64"))
    v = b.input("v", TensorType(shape, "f64"))
    (gx,) = backprop(b, build(b, x), [x])
    z = b.reduce_sum(b.mul(gx, v))
    (hv,) = backprop(b, z, [x])
    graph = b.build([z, hv])
    arrays = [sample(kind, shape, rng), sample("f", shape, rng)]
    got = run(graph, arrays)[1]
    want = finite_difference(lambda arrs: float(run(graph, arrs)[0]), arrays, 0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def check_op_second_order(op: str, specs, attrs=None, seed=0):
    """Differentiate the op's VJP again: d/dx <grad L(x), v> against differences of <grad L(x), v>."""
    rng = np.random.default_rng(seed)
    graph = op_loss_graph(op, specs, attrs or {})
    b = GraphBuilder(op)
    b.inputs, b.nodes = list(graph.inputs), list(graph.nodes)
    xs = [v for v in graph.inputs[:len(specs)] if v.dtype.is_float]
    grads = backprop(b, graph.outputs[0], xs)
    vs = [b.input(f"v{i}", x.type) for i, x in enumerate(xs)]
    z = b.reduce_sum(b.mul(grads[0], vs[0]))
    for g, v in zip(grads[1:], vs[1:]):
        z = b.add(z, b.reduce_sum(b.mul(g, v)))
    second = backprop(b, z, xs)
    g2 = b.build([z, *second])
    arrays = [sample(kind, shape, rng) for shape, kind in specs]
    arrays += [sample("f", v.type.shape, rng) for v in g2.inputs[len(specs):]]
    got = run(g2, arrays)[1:]
    names = g2.input_names()
    for x, want_from in zip(xs, got):
        want = finite_difference(lambda arrs: float(run(g2, arrs)[0]), arrays, names.index(x.name))
        np.testing.assert_allclose(want_from, want, rtol=1e-4, atol=1e-6, err_msg=f"second order w.r.t. {x.name}")
