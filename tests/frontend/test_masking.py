"""Keras 3's masking protocol: Embedding(mask_zero) and Masking make masks, layers pass them on, the
recurrent layers and GlobalAveragePooling1D consume them. Keras 3 (jax) parity forward and for one
training step (1e-5), native and ONNX Runtime against the reference (1e-5), and clear errors."""
import os

import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend import config

from model_helpers import predict_ref

L = kc.layers
os.environ.setdefault("KERAS_BACKEND", "jax")

# token 0 is padding: rows padded at the end, at the start, in the middle, and a fully padded row
TOKENS = np.array([[3, 5, 7, 0, 0, 0], [0, 0, 2, 9, 4, 1], [6, 0, 8, 0, 2, 0], [0, 0, 0, 0, 0, 0]], np.int32)


def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * scale for w in model.get_weights()])
    return model


def text_model(M, rnn, pool=False, **kwargs):
    """Embedding(mask_zero) -> Dense (passes the mask) -> recurrent layer [-> GlobalAveragePooling1D]."""
    inp = M.Input(shape=(6,), dtype="int32")
    x = M.layers.Embedding(10, 4, mask_zero=True)(inp)
    x = M.layers.Dense(5, activation="tanh")(x)
    x = getattr(M.layers, rnn)(3, **kwargs)(x)
    if pool:
        x = M.layers.GlobalAveragePooling1D()(x)
    return M.Model(inp, x)


def keras_twin(ours, build):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras parity tests need KERAS_BACKEND=jax")
    theirs = build(keras)
    theirs.set_weights(ours.get_weights())
    return keras, theirs


def _outs(x):
    return [np.asarray(o) for o in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]


CASES = [("LSTM", {}, False), ("GRU", {"return_sequences": True}, True),
         ("SimpleRNN", {"return_sequences": True, "go_backwards": True}, False),
         ("LSTM", {"return_sequences": True, "return_state": True, "go_backwards": True}, False),
         ("GRU", {"reset_after": False, "go_backwards": True}, False),
         ("LSTM", {"return_sequences": True}, True)]


@pytest.mark.parametrize("rnn,kwargs,pool", CASES)
def test_masked_recurrent_layers_match_keras(rnn, kwargs, pool):
    ours = randomize(text_model(kc, rnn, pool, **kwargs))
    _, theirs = keras_twin(ours, lambda k: text_model(k, rnn, pool, **kwargs))
    got, want = _outs(predict_ref(ours, TOKENS)), _outs(theirs.predict(TOKENS, verbose=0))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    for g, w in zip(_outs(ours(TOKENS)), want):   # eager calls carry masks too
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_masking_layer_and_one_training_step_match_keras():
    x = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    x[0, 3:] = 0.0
    x[2, :2] = 0.0
    y = np.random.default_rng(1).standard_normal((4, 2)).astype(np.float32)

    def build(M):
        inp = M.Input(shape=(5, 3))
        h = M.layers.LSTM(4, return_sequences=True)(M.layers.Masking(0.0)(inp))
        return M.Model(inp, M.layers.Dense(2)(M.layers.GRU(3)(h)))
    ours = randomize(build(kc))
    keras, theirs = keras_twin(ours, build)
    np.testing.assert_allclose(predict_ref(ours, x), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    ours.compile(kc.optimizers.SGD(0.3), "mse", backend="reference")
    theirs.compile(keras.optimizers.SGD(0.3), "mse")
    np.testing.assert_allclose(ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y)), rtol=1e-5)
    for g, w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


def test_masks_on_symbolic_and_eager_tensors():
    inp = kc.Input(shape=(6,), dtype="int32")
    emb = L.Embedding(10, 4, mask_zero=True)(inp)
    assert emb._keras_mask is not None and emb._keras_mask.shape == (None, 6)
    assert emb._keras_mask.dtype == "bool"
    dense = L.Dense(2)(emb)
    assert dense._keras_mask is not None                       # Dense passes the mask through
    assert L.LSTM(2)(dense)._keras_mask is None                # the last state: no timesteps left
    assert L.LSTM(2, return_sequences=True)(dense)._keras_mask is not None
    assert L.Flatten()(dense)._keras_mask is None              # layers without masking support drop it
    eager = L.Embedding(10, 4, mask_zero=True)(TOKENS)
    np.testing.assert_array_equal(eager._keras_mask.numpy(), TOKENS != 0)
    masked = L.Masking(0.5)(np.array([[[0.5, 0.5], [1.0, 0.5]]], np.float32))
    np.testing.assert_array_equal(masked._keras_mask.numpy(), [[False, True]])
    np.testing.assert_array_equal(masked.numpy(), [[[0, 0], [1.0, 0.5]]])


def test_softmax_and_merge_masks():
    x = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    mask = np.array([[True, False, True, True], [False, False, False, False]])
    out = L.Softmax()(x, mask=mask).numpy()
    e = np.exp(x - x.max(axis=1, keepdims=True)) * mask
    want = np.where(mask, e / np.maximum(e.sum(axis=1, keepdims=True), 1e-30), 0)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    a = L.Embedding(10, 2, mask_zero=True)(TOKENS)
    b = L.Embedding(10, 2, mask_zero=True)(TOKENS[::-1].copy())
    np.testing.assert_array_equal(L.Add()([a, b])._keras_mask.numpy(), (TOKENS != 0) | (TOKENS[::-1] != 0))
    cat = L.Concatenate(axis=1)([a, b])
    np.testing.assert_array_equal(cat._keras_mask.numpy(), np.concatenate([TOKENS != 0, TOKENS[::-1] != 0], 1))


def test_native_and_onnx_agree_with_reference(tmp_path):
    model = randomize(text_model(kc, "LSTM", pool=True, return_sequences=True))
    tokens = TOKENS[:3]   # no fully padded row: its masked mean is 0/0, as in Keras
    want = predict_ref(model, tokens)
    if config.native_available():
        from kcompile.compiler.jit import compile_graph
        np.testing.assert_allclose(compile_graph(model.forward_graph())([tokens])[0], want, rtol=1e-5, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    from kcompile.compiler.onnx_export import export_onnx
    graph = model.forward_graph()
    sess = ort.InferenceSession(str(export_onnx(graph, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {graph.inputs[0].name: tokens})[0], want, rtol=0, atol=1e-5)


def test_masks_of_the_wrong_shape_name_the_layer():
    lstm = L.LSTM(2, name="masked_lstm")
    x = np.ones((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"masked_lstm.*mask of shape \(2, 4\).*expected shape \(2, 5\)"):
        lstm(x, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"gap.*mask of shape \(2, 5, 3\)"):
        L.GlobalAveragePooling1D(name="gap")(x, mask=np.ones((2, 5, 3), bool))
    with pytest.raises(ValueError, match=r"sm.*mask of shape \(3,\)"):
        L.Softmax(name="sm")(np.ones((2, 4), np.float32), mask=np.ones((3,), bool))


@pytest.mark.parametrize("merge", ["Maximum", "Minimum", "Add", "Concatenate"])
def test_merged_masks_feed_an_lstm_as_in_keras(merge):
    other = np.array([[0, 5, 7, 0, 1, 0], [1, 0, 9, 0, 0, 2], [0, 0, 3, 3, 0, 1], [4, 0, 0, 0, 0, 0]], np.int32)

    def build(M):
        a, b = M.Input(shape=(6,), dtype="int32"), M.Input(shape=(6,), dtype="int32")
        ea, eb = (M.layers.Embedding(10, 3, mask_zero=True)(t) for t in (a, b))
        return M.Model([a, b], M.layers.LSTM(2)(getattr(M.layers, merge)()([ea, eb])))
    ours = randomize(build(kc))
    _, theirs = keras_twin(ours, build)
    np.testing.assert_allclose(predict_ref(ours, TOKENS, other), theirs.predict([TOKENS, other], verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("with_mask", [True, False])
def test_lambda_mask_argument_matches_keras(with_mask):
    """Lambda(mask=fn) computes the output mask (fn gets the inputs' mask; so does a function taking
    `mask`); without mask= the layer does not support masking and the mask stops there, as Keras."""
    def build(M):
        inp = M.Input(shape=(6,), dtype="int32")
        x = M.layers.Embedding(10, 4, mask_zero=True)(inp)
        keep = (lambda t, m: M.ops.logical_and(m, M.ops.greater(M.ops.sum(t, -1), -0.5)))
        x = M.layers.Lambda(lambda t, mask=None: t * 2.0, **({"mask": keep} if with_mask else {}))(x)
        return M.Model(inp, M.layers.LSTM(3)(x))
    ours = randomize(build(kc))
    _, theirs = keras_twin(ours, build)
    expected = np.asarray(theirs(TOKENS))
    np.testing.assert_allclose(np.asarray(ours(TOKENS)), expected, atol=1e-5)
    ours.compile("sgd", "mse")
    np.testing.assert_allclose(ours.predict(TOKENS, verbose=0), expected, atol=1e-5)
