"""GradientTape, kc.function, kc.grad / value_and_grad: gradients vs closed forms and finite differences."""
import numpy as np
import pytest

from kcompile.frontend import ops, tape as tp
from kcompile.frontend.tensor import convert_to_tensor
from kcompile.frontend.variables import Variable

GradientTape = tp.GradientTape


def test_book_chapter2_scalar_and_dense():
    x = Variable(0.0)
    with GradientTape() as tape:
        y = 2 * x + 3
    assert float(tape.gradient(y, x)) == 2.0

    rng = np.random.default_rng(0)
    W = Variable(rng.random((2, 2)).astype("float32"))
    b = Variable(np.zeros((2,), "float32"))
    xin = rng.random((2, 2)).astype("float32")
    with GradientTape() as tape:
        y = ops.matmul(xin, W) + b
    gW, gb = tape.gradient(y, [W, b])
    np.testing.assert_allclose(gW.numpy(), xin.T @ np.ones((2, 2)), rtol=1e-6)  # d sum(xW+b)/dW
    np.testing.assert_allclose(gb.numpy(), [2.0, 2.0])


def test_book_chapter3_second_order_nested_tapes():
    time = Variable(0.0)
    with GradientTape() as outer_tape:
        with GradientTape() as inner_tape:
            position = 4.9 * time ** 2
        speed = inner_tape.gradient(position, time)
    acceleration = outer_tape.gradient(speed, time)
    assert np.isclose(float(speed), 0.0) and np.isclose(float(acceleration), 9.8)

    t3 = Variable(2.0)
    with GradientTape() as outer:
        with GradientTape() as inner:
            y = t3 ** 3
        dy = inner.gradient(y, t3)
    assert np.isclose(float(dy), 12.0) and np.isclose(float(outer.gradient(dy, t3)), 12.0)


def test_book_chapter3_linear_classifier_trains():
    num_samples_per_class = 200
    rng = np.random.default_rng(0)
    negative_samples = rng.multivariate_normal(mean=[0, 3], cov=[[1, 0.5], [0.5, 1]], size=num_samples_per_class)
    positive_samples = rng.multivariate_normal(mean=[3, 0], cov=[[1, 0.5], [0.5, 1]], size=num_samples_per_class)
    inputs = np.vstack((negative_samples, positive_samples)).astype(np.float32)
    targets = np.vstack((np.zeros((num_samples_per_class, 1), dtype="float32"),
                         np.ones((num_samples_per_class, 1), dtype="float32")))
    input_dim, output_dim = 2, 1
    W = Variable(initial_value=rng.uniform(size=(input_dim, output_dim)).astype("float32"))
    b = Variable(initial_value=ops.zeros(shape=(output_dim,)))

    def model(inputs):
        return ops.matmul(inputs, W) + b

    def square_loss(targets, predictions):
        per_sample_losses = ops.square(targets - predictions)
        return ops.mean(per_sample_losses)

    learning_rate = 0.1

    def training_step(inputs, targets):
        with GradientTape() as tape:
            predictions = model(inputs)
            loss = square_loss(targets, predictions)
        grad_loss_wrt_W, grad_loss_wrt_b = tape.gradient(loss, [W, b])
        W.assign_sub(grad_loss_wrt_W * learning_rate)
        b.assign_sub(grad_loss_wrt_b * learning_rate)
        return loss

    losses = [float(training_step(inputs, targets)) for _ in range(40)]
    predictions = model(inputs).numpy()
    assert losses[-1] < 0.05 < losses[0]
    assert ((predictions > 0.5) == targets).mean() > 0.97


def test_watch_persistent_and_unconnected():
    x = convert_to_tensor(np.array([1.0, 2.0, 3.0], np.float32))
    with GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = ops.sum(ops.exp(x))
        z = ops.sum(x * x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.exp([1.0, 2.0, 3.0]), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(z, x).numpy(), [2.0, 4.0, 6.0])
    other = Variable(1.0)
    assert tape.gradient(z, other) is None
    assert float(tape.gradient(z, other, unconnected_gradients="zero")) == 0.0
    with GradientTape() as once:
        once.watch(x)
        y = ops.sum(x)
    once.gradient(y, x)
    with pytest.raises(RuntimeError, match="non-persistent"):
        once.gradient(y, x)


def test_unwatched_tensor_has_no_gradient():
    x = convert_to_tensor(np.ones(3, np.float32))
    with GradientTape() as tape:
        y = ops.sum(x * 2.0)
    assert tape.gradient(y, x) is None


def _finite_diff(f, x, eps=1e-3):
    g = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def test_tape_through_softmax_loss_matches_finite_differences():
    from kcompile.frontend import losses
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    xin = rng.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0])
    W = Variable(w0)

    def loss_of(w):
        logits = xin.astype(np.float64) @ w
        z = logits - logits.max(-1, keepdims=True)
        return float(-(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(5), labels].mean())

    with GradientTape() as tape:
        loss = ops.mean(losses.sparse_categorical_crossentropy(labels, ops.matmul(xin, W), from_logits=True))
    np.testing.assert_allclose(tape.gradient(loss, W).numpy(), _finite_diff(loss_of, w0.astype(np.float64)),
                               rtol=1e-3, atol=1e-4)


def test_function_grad_and_value_and_grad():
    def f(x, y):
        return ops.sum(ops.square(x) * y)

    x = np.array([1.0, 2.0], np.float32)
    y = np.array([3.0, 4.0], np.float32)
    traced = tp.function(f)
    assert float(traced(x, y)) == 19.0
    assert traced.graph is not None and len(traced.graph.inputs) == 2
    g = tp.grad(f)
    np.testing.assert_allclose(g(x, y).numpy(), 2 * x * y)
    assert g.graph.outputs and "matmul" not in str(g.graph)
    vg = tp.value_and_grad(f, argnums=(0, 1))
    value, (gx, gy) = vg(x, y)
    assert float(value) == 19.0
    np.testing.assert_allclose(gy.numpy(), x ** 2)


def test_gradient_with_respect_to_an_intermediate_tensor():
    w = Variable(np.array([1.0, 2.0], np.float32))
    with GradientTape() as tape:
        h = w * 3.0
        y = ops.sum(h * h)
    np.testing.assert_allclose(tape.gradient(y, h).numpy(), 2 * 3.0 * np.array([1.0, 2.0]))


def test_grad_of_grad_is_second_order():
    def cube(x):
        return ops.sum(x ** 3)

    x = np.array([1.0, -2.0, 0.5], np.float32)
    d1 = tp.grad(cube)
    np.testing.assert_allclose(d1(x).numpy(), 3 * x ** 2, rtol=1e-6)
    d2 = tp.grad(lambda v: ops.sum(d1(v)))
    np.testing.assert_allclose(d2(x).numpy(), 6 * x, rtol=1e-6)
    assert len(d2.graph.nodes) > len(d1.graph.nodes)
