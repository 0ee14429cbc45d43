"""A dynamic sequence length: Input(shape=(None, F)) traces one graph whose sequence axis is the symbol T.
The reference interpreter, ONNX Runtime and native code (JIT, artifact) run that one graph at any length;
the front end's native backend compiles it once (tests/compiler/test_dynamic_length_native.py has more)."""
import os

import numpy as np
import pytest

import kcompile as kc
from kcompile.ir import TensorType
from kcompile.ir.interpreter import InputError

from model_helpers import predict_ref

L = kc.layers
os.environ.setdefault("KERAS_BACKEND", "jax")


def build(M, steps=None):
    inp = M.Input(shape=(steps,), dtype="int32")
    x = M.layers.Embedding(30, 4, mask_zero=True)(inp)
    x = M.layers.Bidirectional(M.layers.GRU(3, return_sequences=True))(x)
    x = M.layers.TimeDistributed(M.layers.Dense(2))(x)
    return M.Model(inp, M.layers.LSTM(2)(x))


def tokens(steps, seed=0):
    t = np.random.default_rng(seed).integers(1, 30, (3, steps)).astype(np.int32)
    t[0, steps // 2:] = 0   # a padded row
    return t


def randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 for w in model.get_weights()])
    return model


def test_one_graph_runs_any_length_and_matches_static_models():
    model = randomized(build(kc))
    graph = model.forward_graph()
    assert graph.inputs[0].type == TensorType(["N", "T"], "i32") and model.input.shape == (None, None)
    for steps in (1, 4, 9):
        static = build(kc, steps)
        static.set_weights(model.get_weights())
        np.testing.assert_allclose(predict_ref(model, tokens(steps)), predict_ref(static, tokens(steps)),
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(model(tokens(steps)).numpy(), predict_ref(static, tokens(steps)),
                                   rtol=1e-5, atol=1e-6)


def test_matches_keras_at_two_lengths():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras parity tests need KERAS_BACKEND=jax")
    ours = randomized(build(kc))
    theirs = build(keras)
    theirs.set_weights(ours.get_weights())
    for steps in (3, 8):
        np.testing.assert_allclose(predict_ref(ours, tokens(steps)), theirs.predict(tokens(steps), verbose=0),
                                   rtol=1e-5, atol=1e-5)


def test_onnx_keeps_the_length_dynamic(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx
    from kcompile.compiler.onnx_export import export_onnx
    model = randomized(build(kc))
    graph = model.forward_graph()
    path = export_onnx(graph, tmp_path / "m.onnx")
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["N", "T"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for steps in (2, 7):
        got = sess.run(None, {graph.inputs[0].name: tokens(steps)})[0]
        np.testing.assert_allclose(got, predict_ref(model, tokens(steps)), rtol=0, atol=1e-5)


def test_lengths_are_checked():
    b = kc.Input(shape=(None, 2), name="a"), kc.Input(shape=(None, 2), name="b")
    model = kc.Model(list(b), L.Add()(list(b)))
    graph = model.forward_graph()
    x = np.zeros((2, 3, 2), np.float32)
    with pytest.raises(InputError, match=r"input 'b'.*dimension 1 \(T\) is 4, but another input binds T = 3"):
        predict_ref(model, x, np.zeros((2, 4, 2), np.float32))
    with pytest.raises(ValueError, match="length 0 is empty"):
        predict_ref(kc.Model(b[0], L.GRU(2)(b[0])), np.zeros((2, 0, 2), np.float32))
    assert graph.inputs[0].type.dynamic_dims == ("T",)
