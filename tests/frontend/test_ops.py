"""kc.ops: eager results vs NumPy, the same functions traced into a graph, tape notification,
Python operators and indexing on KTensors, loose-constant dtypes."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend import tensor as T
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run

ops = kc.ops
X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
P = np.abs(X) + 0.5

CASES = [
    ("add", lambda t: ops.add(t, 1.5), lambda x: x + 1.5),
    ("subtract", lambda t: ops.subtract(2, t), lambda x: 2 - x),
    ("multiply", lambda t: ops.multiply(t, t), lambda x: x * x),
    ("divide", lambda t: ops.divide(t, 4), lambda x: x / 4),
    ("matmul", lambda t: ops.matmul(t, ops.transpose(t)), lambda x: x @ x.T),
    ("dot", lambda t: ops.dot(t, np.ones(4, np.float32)), lambda x: x.sum(1)),
    ("exp", ops.exp, np.exp), ("abs", ops.abs, np.abs), ("square", ops.square, np.square),
    ("relu", ops.relu, lambda x: np.maximum(x, 0)), ("tanh", ops.tanh, np.tanh),
    ("sigmoid", ops.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    ("softmax", ops.softmax, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    ("log_softmax", ops.log_softmax, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    ("mean", lambda t: ops.mean(t, axis=1), lambda x: x.mean(1)),
    ("sum", lambda t: ops.sum(t, axis=0, keepdims=True), lambda x: x.sum(0, keepdims=True)),
    ("sum_all", ops.sum, np.sum),
    ("max", lambda t: ops.max(t, axis=-1), lambda x: x.max(-1)),
    ("min", lambda t: ops.min(t, axis=0), lambda x: x.min(0)),
    ("reshape", lambda t: ops.reshape(t, (2, 6)), lambda x: x.reshape(2, 6)),
    ("transpose", ops.transpose, np.transpose),
    ("concatenate", lambda t: ops.concatenate([t, t], axis=1), lambda x: np.concatenate([x, x], 1)),
    ("stack", lambda t: ops.stack([t, t]), lambda x: np.stack([x, x])),
    ("expand_dims", lambda t: ops.expand_dims(t, 1), lambda x: x[:, None]),
    ("squeeze", lambda t: ops.squeeze(ops.expand_dims(t, -1), -1), lambda x: x),
    ("where", lambda t: ops.where(t > 0, t, 0.0), lambda x: np.where(x > 0, x, 0)),
    ("maximum", lambda t: ops.maximum(t, 0.1), lambda x: np.maximum(x, 0.1)),
    ("minimum", lambda t: ops.minimum(t, -0.1), lambda x: np.minimum(x, -0.1)),
    ("clip", lambda t: ops.clip(t, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    ("take", lambda t: ops.take(t, np.array([2, 0]), axis=1), lambda x: x[:, [2, 0]]),
    ("getitem", lambda t: t[1:, ::2], lambda x: x[1:, ::2]),
    ("getitem_int", lambda t: t[:, -1], lambda x: x[:, -1]),
    ("getitem_none", lambda t: t[None, ..., 0], lambda x: x[None, ..., 0]),
    ("operators", lambda t: -(t * 2 - 1) / 3 + t ** 2.0, lambda x: -(x * 2 - 1) / 3 + x ** 2),
    ("var", lambda t: ops.var(t, axis=1), lambda x: x.var(1)),
]


@pytest.mark.parametrize("name,fn,ref", CASES, ids=[c[0] for c in CASES])
def test_op_eager_and_traced_match_numpy(name, fn, ref):
    want = ref(X.astype(np.float64))
    eager = fn(ops.convert_to_tensor(X))
    np.testing.assert_allclose(eager.numpy(), want, rtol=1e-5, atol=1e-6)
    b = GraphBuilder("t")
    ctx = T.TraceContext(b)
    with T.tracing(ctx):
        out = fn(T.KTensor(value=b.input("x", TensorType((3, 4))), trace=ctx))
    g = b.build([out.value])
    np.testing.assert_allclose(run(g, [X])[0], want, rtol=1e-5, atol=1e-6)


def test_positive_only_ops():
    for fn, ref in [(ops.log, np.log), (ops.sqrt, np.sqrt)]:
        np.testing.assert_allclose(fn(P).numpy(), ref(P), rtol=1e-6)


def test_argmax_one_hot_cast():
    t = ops.convert_to_tensor(X)
    assert ops.argmax(t, axis=1).numpy().tolist() == X.argmax(1).tolist()
    assert int(ops.argmax(t)) == int(X.argmax())
    oh = ops.one_hot(np.array([0, 2]), 3)
    assert oh.numpy().tolist() == [[1, 0, 0], [0, 0, 1]] and oh.dtype == "float32"
    assert ops.cast(t, "int32").dtype == "int32"
    assert ops.zeros((2, 3)).shape == (2, 3) and ops.ones((2,), "int32").dtype == "int32"


def test_loose_constants_take_the_tensor_dtype():
    ti = ops.convert_to_tensor(np.array([1, 2], np.int32))
    assert (ti + 1).dtype == "int32"
    assert (ti / 2).dtype == "float32"
    tf = ops.convert_to_tensor(np.array([1.0], np.float32))
    assert (tf + np.float64(2.0)).dtype == "float32" and (tf * 3).dtype == "float32"
    assert ops.convert_to_tensor(2.5).dtype == "float32" and ops.convert_to_tensor(2).dtype == "int32"


def test_eager_ops_notify_recorders_and_variables_become_params():
    seen = []

    class Recorder:
        def record(self, op, inputs, attrs, outputs):
            seen.append((op, inputs, outputs))
    v = kc.Variable(np.ones((2,), np.float32), name="w")
    T.RECORDERS.append(Recorder())
    try:
        y = ops.multiply(v, 3.0)
    finally:
        T.RECORDERS.pop()
    assert seen[0][0] == "mul" and seen[0][1][0] is v and seen[0][2][0] is y
    b = GraphBuilder("t")
    ctx = T.TraceContext(b)
    with T.tracing(ctx):
        out = ops.sum(v * v)
    g = b.build([T.traced_value(ctx, out)])
    assert g.param_names == ["w"] and run(g, [])[0] == 2.0


def test_symbolic_and_traced_errors_are_clear():
    x = kc.Input(shape=(3,))
    with pytest.raises(ValueError, match="no value yet"):
        x.numpy()
    with pytest.raises(Exception, match="matmul"):
        ops.matmul(ops.ones((2, 3)), ops.ones((2, 3)))
