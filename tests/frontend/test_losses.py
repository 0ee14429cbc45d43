"""Losses vs hand-written NumPy: eager functions, Loss classes, and the IR path (reference run)."""
import numpy as np
import pytest

from kcompile.frontend import losses
from kcompile.frontend.training.emitter import GraphEmitter
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime import reference

EPS = 1e-7
rng = np.random.default_rng(1)
LOGITS = rng.standard_normal((6, 4)).astype(np.float32)
PROBS = (np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)).astype(np.float32)
SPARSE = np.array([0, 3, 1, 2, 2, 0])
ONEHOT = np.eye(4, dtype=np.float32)[SPARSE]
BIN_T = rng.integers(0, 2, (6, 1)).astype(np.float32)
BIN_P = (1 / (1 + np.exp(-LOGITS[:, :1]))).astype(np.float32)
SW = np.array([1.0, 0.5, 0.0, 2.0, 1.0, 1.0], np.float32)


def np_cce(t, p):
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(t * np.log(p)).sum(-1)


def np_bce(t, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)


def np_log_softmax(x):
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


CASES = [  # (loss object, y_true, y_pred, per-sample numpy)
    (losses.MeanSquaredError(), ONEHOT, PROBS, ((ONEHOT - PROBS) ** 2).mean(-1)),
    (losses.MeanAbsoluteError(), ONEHOT, PROBS, np.abs(ONEHOT - PROBS).mean(-1)),
    (losses.CategoricalCrossentropy(), ONEHOT, PROBS, np_cce(ONEHOT, PROBS)),
    (losses.CategoricalCrossentropy(from_logits=True), ONEHOT, LOGITS, -(ONEHOT * np_log_softmax(LOGITS)).sum(-1)),
    (losses.CategoricalCrossentropy(label_smoothing=0.2), ONEHOT, PROBS, np_cce(ONEHOT * 0.8 + 0.05, PROBS)),
    (losses.SparseCategoricalCrossentropy(), SPARSE, PROBS, np_cce(ONEHOT, PROBS)),
    (losses.SparseCategoricalCrossentropy(from_logits=True), SPARSE[:, None], LOGITS,
     -(ONEHOT * np_log_softmax(LOGITS)).sum(-1)),
    (losses.BinaryCrossentropy(), BIN_T, BIN_P, np_bce(BIN_T, BIN_P)),
    (losses.BinaryCrossentropy(label_smoothing=0.1), BIN_T, BIN_P, np_bce(BIN_T * 0.9 + 0.05, BIN_P)),
    (losses.BinaryCrossentropy(from_logits=True), BIN_T, LOGITS[:, :1], np_bce(BIN_T, BIN_P)),
    (losses.BinaryCrossentropy(), BIN_T[:, 0], BIN_P, np_bce(BIN_T, BIN_P)),  # rank matched like Keras
]
IDS = [f"{type(c[0]).__name__}-{i}" for i, c in enumerate(CASES)]


@pytest.mark.parametrize("loss,y_true,y_pred,expected", CASES, ids=IDS)
def test_loss_class_eager(loss, y_true, y_pred, expected):
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected.mean(), rtol=1e-5)
    weighted = loss(y_true, y_pred, sample_weight=SW)
    np.testing.assert_allclose(float(weighted), (expected * SW).mean(), rtol=1e-5)


@pytest.mark.parametrize("loss,y_true,y_pred,expected", CASES, ids=IDS)
def test_loss_graph_with_symbolic_batch(loss, y_true, y_pred, expected):
    b = GraphBuilder("loss")
    yt = b.input("y", TensorType(("N",) + y_true.shape[1:], "i64" if y_true.dtype.kind == "i" else "f32"))
    yp = b.input("p", TensorType(("N",) + y_pred.shape[1:]))
    sw = b.input("sw", TensorType(("N",)))
    E = GraphEmitter(b)
    g = b.build([loss.emit(E, yt, yp), loss.emit(E, yt, yp, sw)])
    plain, weighted = reference.run(g, [y_true.astype(yt.dtype.np), y_pred, SW])
    np.testing.assert_allclose(plain, expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(weighted, (expected * SW).mean(), rtol=1e-5)


def test_functions_return_per_sample_values():
    out = losses.sparse_categorical_crossentropy(SPARSE, PROBS)
    np.testing.assert_allclose(out.numpy(), np_cce(ONEHOT, PROBS), rtol=1e-5)
    np.testing.assert_allclose(losses.mse(ONEHOT, PROBS).numpy(), ((ONEHOT - PROBS) ** 2).mean(-1), rtol=1e-6)
    np.testing.assert_allclose(losses.categorical_crossentropy(ONEHOT, LOGITS, from_logits=True).numpy(),
                               -(ONEHOT * np_log_softmax(LOGITS)).sum(-1), rtol=1e-5)


def test_reductions():
    expected = ((ONEHOT - PROBS) ** 2).mean(-1)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="sum")(ONEHOT, PROBS).numpy(), expected.sum(),
                               rtol=1e-5)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction=None)(ONEHOT, PROBS).numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="average")


def test_get_by_name_function_and_class():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("sparse_categorical_crossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get(losses.binary_crossentropy), losses.BinaryCrossentropy)
    assert isinstance(losses.get(losses.CategoricalCrossentropy), losses.CategoricalCrossentropy)
    with pytest.raises(ValueError, match="Could not interpret loss"):
        losses.get("nonesuch")


def test_custom_loss_function_runs_eager_and_in_graph():
    from kcompile.frontend import tensor

    def my_loss(y_true, y_pred):
        return tensor.apply("reduce_mean", tensor.apply("abs", y_true - y_pred), axes=(-1,))

    loss = losses.get(my_loss)
    np.testing.assert_allclose(float(loss(ONEHOT, PROBS)), np.abs(ONEHOT - PROBS).mean(), rtol=1e-6)
    b = GraphBuilder("custom")
    yt, yp = b.input("y", TensorType(("N", 4))), b.input("p", TensorType(("N", 4)))
    g = b.build([loss.emit(GraphEmitter(b), yt, yp)])
    np.testing.assert_allclose(reference.run(g, [ONEHOT, PROBS])[0], np.abs(ONEHOT - PROBS).mean(), rtol=1e-6)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="same shape"):
        losses.CategoricalCrossentropy()(ONEHOT[:, :3], PROBS)
    with pytest.raises(ValueError, match="same shape up to the last dimension"):
        losses.SparseCategoricalCrossentropy()(ONEHOT, PROBS[:, :3])


class HuberLike(losses.Loss):
    """A Loss subclass overriding call() with kc.ops, used eagerly and inside fit's graph."""

    def __init__(self, delta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.delta = delta

    def call(self, y_true, y_pred):
        from kcompile.frontend import ops
        err = ops.abs(y_true - y_pred)
        return ops.mean(ops.where(err < self.delta, 0.5 * err * err, self.delta * (err - 0.5 * self.delta)), axis=-1)


def _np_huber(t, p, delta=1.0):
    err = np.abs(t - p)
    return np.where(err < delta, 0.5 * err ** 2, delta * (err - 0.5 * delta)).mean(-1)


def test_loss_subclass_eager_and_in_fit():
    import kcompile as kc
    t, p = LOGITS, 2 * PROBS
    assert np.isclose(float(HuberLike()(t, p)), _np_huber(t, p).mean(), rtol=1e-6)
    assert HuberLike().name == "huber_like"
    model = kc.Sequential([kc.layers.Dense(4, input_shape=(4,))])
    model.compile("sgd", HuberLike(delta=0.5), backend="reference")
    expected = _np_huber(t, model.predict(p, verbose=0), 0.5).mean()
    assert np.isclose(model.evaluate(p, t, verbose=0), expected, rtol=1e-5)
