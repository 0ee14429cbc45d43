"""stop_gradient: the identity forward, no gradient back (Keras/JAX semantics), natively too."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes import grad_graph
from kcompile.runtime.reference import run


def _graph():
    b = GraphBuilder("sg")
    x = b.input("x", TensorType(["N", 3], "f64"))
    y = b.mul(x, b.stop_gradient(b.square(x)))     # d/dx = x^2 (the stopped factor is a constant)
    return b.build([b.reduce_sum(y)])


def test_forward_is_identity_and_gradient_skips_the_stopped_branch():
    g = _graph()
    x = np.array([[1.0, -2.0, 3.0], [0.5, 0.0, -1.5]])
    loss, dx = run(grad_graph(g, ["x"]), [x])
    np.testing.assert_allclose(loss, np.sum(x ** 3))
    np.testing.assert_allclose(dx, x ** 2)          # not 3 x^2: no gradient flows through stop_gradient


def test_native_gradient_matches():
    from kcompile.compiler.jit import compile_graph
    fn = compile_graph(grad_graph(_graph(), ["x"]))
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_allclose(fn([x])[1], x ** 2, rtol=1e-12)


def test_gradient_only_through_stop_gradient_is_none_not_an_error():
    b = GraphBuilder("only")
    x = b.input("x", TensorType([2], "f64"))
    g = b.build([b.reduce_sum(b.stop_gradient(x))])
    out = run(grad_graph(g, ["x"]), [np.ones(2)])
    np.testing.assert_array_equal(out[1], np.zeros(2))
