"""kc.function's tf.function contract: state threaded through the graph, retracing rules, input_signature,
reduce_retracing, trace-time side effects, and clear errors for what cannot be traced."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers, ops
from kcompile.frontend.function import TracingError

REF = {"backend": "reference"}   # contract tests run on the reference interpreter (no compile time)


def test_variable_writes_are_state_native_in_place_and_scalars():
    v = kc.Variable(np.arange(3, dtype="float32"), name="v")
    count = kc.Variable(0, dtype="int64", name="count", trainable=False)

    @kc.function
    def step(x):
        v.assign_add(x)
        v.assign(v * 2.0)
        v.assign_sub(np.ones(3, np.float32))
        count.assign_add(1)
        return ops.sum(v)

    expected = np.arange(3, dtype=np.float32)
    live = v.value_array
    for _ in range(3):
        x = np.full(3, 0.5, np.float32)
        total = step(x)
        expected = (expected + x) * 2 - 1
        np.testing.assert_allclose(v.numpy(), expected)
        np.testing.assert_allclose(float(total), expected.sum())
    assert int(count.numpy()) == 3 and step.tracing_count == 1
    assert v.value_array is live   # written in place by the native code, bound once
    assert step.concrete_functions[0].backend == "native"


def test_retracing_follows_shapes_dtypes_and_python_values():
    traces = []

    @kc.function(**REF)
    def f(x, scale, mode="add"):
        traces.append(1)   # a Python side effect: runs at trace time only
        x = ops.cast(x, "float32")
        return x * scale + 1.0 if mode == "add" else x * scale

    a = np.ones((2, 3), np.float32)
    assert float(ops.sum(f(a, 2.0))) == 18.0
    f(a + 1, 2.0)                                   # same signature: no retrace
    assert len(traces) == 1
    f(np.ones((4, 3), np.float32), 2.0)             # new shape
    f(a, 3.0)                                       # new Python value (static)
    assert float(ops.sum(f(a, 3.0, mode="mul"))) == 18.0   # new string
    f(np.ones((2, 3), np.int32), 2.0)               # new dtype
    assert len(traces) == 5 == f.tracing_count


def test_input_signature_with_none_batch_compiles_once():
    w = kc.Variable(np.ones((3, 2), np.float32), name="w")

    @kc.function(input_signature=[kc.TensorSpec((None, 3), "float32")])
    def f(x):
        return ops.matmul(x, w)

    for n in (1, 5, 8):
        np.testing.assert_allclose(f(np.ones((n, 3), np.float32)).numpy(), np.full((n, 2), 3.0))
    assert f.tracing_count == 1
    with pytest.raises(TypeError, match="input_signature"):
        f(np.ones((2, 3), np.float32), np.ones(2, np.float32))    # another argument structure
    with pytest.raises(TypeError, match=r"argument 0 should match TensorSpec\(shape=\(None, 3\)"):
        f(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="only the leading"):
        kc.TensorSpec((None, None))


def test_reduce_retracing_generalizes_the_batch_dimension():
    @kc.function(reduce_retracing=True, jit_compile=True, **REF)
    def f(x):
        return ops.sum(x, axis=1)

    for n in (2, 3, 7, 9):
        np.testing.assert_allclose(f(np.ones((n, 4), np.float32)).numpy(), np.full(n, 4.0))
    assert f.tracing_count == 2   # the exact first shape, then one trace with a symbolic batch


def test_batch_norm_statistics_and_dropout_counter_match_eager():
    def make():
        model = kc.Sequential([layers.Input((4,)), layers.Dense(3), layers.BatchNormalization(momentum=0.5),
                               layers.Dropout(0.5, seed=3)])
        model.build((None, 4))
        return model

    eager, traced = make(), make()
    traced.set_weights(eager.get_weights())
    x = np.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    from kcompile.frontend.layers.core import _EagerCounter
    start = _EagerCounter.value
    eager_out = [eager(x, training=True).numpy() for _ in range(2)]
    _EagerCounter.value = start
    step = kc.function(lambda x: traced(x, training=True), **REF)
    traced_out = [step(x).numpy() for _ in range(2)]
    assert _EagerCounter.value == start + 2
    np.testing.assert_allclose(traced_out, eager_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(eager.get_weights(), traced.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_metrics_inside_a_function_keep_their_state():
    acc, mean = kc.metrics.SparseCategoricalAccuracy(), kc.metrics.Mean()

    @kc.function(**REF)
    def update(y, p, w):
        acc.update_state(y, p)
        mean.update_state(w, sample_weight=np.array([1.0, 3.0], np.float32))
        return acc.result(), mean.result()

    y = np.array([1, 0])
    p = np.array([[0.1, 0.9], [0.2, 0.8]], np.float32)
    update(y, p, np.array([1.0, 2.0], np.float32))
    a, m = update(y, p, np.array([1.0, 2.0], np.float32))
    assert float(a) == pytest.approx(0.5) and float(m) == pytest.approx(7 / 4)
    assert float(acc.result()) == pytest.approx(0.5) and float(acc.count.numpy()) == 4
    acc.reset_states()
    assert float(acc.result()) == 0.0
    auc = kc.metrics.AUC()
    with pytest.raises(TracingError, match="auc|AUC|metrics"):
        kc.function(lambda y, p: auc.update_state(y, p), **REF)(np.array([1.0, 0.0]), np.array([0.7, 0.2]))


def test_python_if_on_a_tensor_names_the_line():
    @kc.function(**REF)
    def f(x):
        if ops.sum(x) > 0:   # data-dependent Python control flow
            return x
        return -x

    with pytest.raises(TracingError, match=r"line \d+ of .*test_function.py \(`if ops.sum\(x\) > 0:.*Python `if`"):
        f(np.ones(3, np.float32))


def test_numpy_inside_names_the_line():
    v = kc.Variable(np.ones(2, np.float32), name="v")

    @kc.function(**REF)
    def f(x):
        return x * v.numpy()

    with pytest.raises(TracingError, match=r"`return x \* v.numpy\(\)`.*\.numpy\(\)"):
        f(np.ones(2, np.float32))


def test_variable_created_when_retracing_is_refused():
    made = []

    @kc.function(**REF)
    def f(x):
        made.append(kc.Variable(np.zeros(x.shape, np.float32), name="late"))
        return x + made[-1]

    f(np.ones(2, np.float32))                       # first trace: allowed (as tf.function)
    with pytest.raises(ValueError, match="created Variable 'late' while retracing"):
        f(np.ones(3, np.float32))


def test_gradient_errors_and_tape_semantics_inside_a_function():
    w = kc.Variable(np.array([1.0, 2.0], np.float32), name="w")

    @kc.function(**REF)
    def grads(x):
        with kc.GradientTape() as tape:
            y = w * x                             # non-scalar target: summed, as TF
        return tape.gradient(y, w)

    np.testing.assert_allclose(grads(np.array([3.0, 4.0], np.float32)).numpy(), [3.0, 4.0])
    with pytest.raises(ValueError, match="must return a scalar"):
        kc.function(lambda x: kc.grad(lambda v: v * 2.0)(x), **REF)(np.ones(2, np.float32))


def test_optimizer_refuses_variables_of_another_model():
    def model():
        m = kc.Sequential([layers.Input((2,)), layers.Dense(1)])
        m.build((None, 2))
        return m

    a, b = model(), model()
    opt = kc.optimizers.SGD(0.1)
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)

    def step(m):
        with kc.GradientTape() as tape:
            loss = ops.mean(ops.square(m(x) - y))
        opt.apply_gradients(zip(tape.gradient(loss, m.trainable_weights), m.trainable_weights))

    step(a)
    with pytest.raises(ValueError, match="unknown variable .*originally built with"):
        step(b)
    with pytest.raises(ValueError, match="unknown variable"):
        kc.function(lambda: step(b), **REF)()


def test_nested_functions_inline_and_methods_bind():
    class Counter:
        def __init__(self):
            self.v = kc.Variable(0.0, name="c")

        @kc.function(backend="reference")
        def bump(self, by):
            self.v.assign_add(by)
            return self.v + 0.0

    c1, c2 = Counter(), Counter()
    c1.bump(np.float32(2))
    c1.bump(np.float32(3))
    c2.bump(np.float32(1))
    assert float(c1.v.numpy()) == 5.0 and float(c2.v.numpy()) == 1.0
    outer = kc.function(lambda x: c1.bump(x) * 2.0, **REF)
    assert float(outer(np.float32(1))) == 12.0 and float(c1.v.numpy()) == 6.0
