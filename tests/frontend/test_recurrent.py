"""LSTM, GRU, SimpleRNN: shapes, an independent NumPy loop (1e-5), Keras 3 parity (1e-5), training with fit,
native vs reference predictions (1e-5) and ONNX export run by onnxruntime (1e-5)."""
import os

import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend import config

from model_helpers import predict_ref

L = kc.layers


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_rnn(kind, x, kernel, recurrent, bias, go_backwards=False, reset_after=True):
    """Independent float64 loop over timesteps; returns (all hidden states in processing order, last states)."""
    n, steps, _ = x.shape
    u = recurrent.shape[0]
    h, c, hs = np.zeros((n, u)), np.zeros((n, u)), []
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    for t in order:
        xt = x[:, t].astype(np.float64)
        if kind == "SimpleRNN":
            h = np.tanh(xt @ kernel + h @ recurrent + bias)
        elif kind == "LSTM":
            zi, zf, zc, zo = np.split(xt @ kernel + h @ recurrent + bias, 4, axis=1)
            c = sigmoid(zf) * c + sigmoid(zi) * np.tanh(zc)
            h = sigmoid(zo) * np.tanh(c)
        elif reset_after:
            xz, xr, xh = np.split(xt @ kernel + bias[0], 3, axis=1)
            rz, rr, rh = np.split(h @ recurrent + bias[1], 3, axis=1)
            z, r = sigmoid(xz + rz), sigmoid(xr + rr)
            h = z * h + (1 - z) * np.tanh(xh + r * rh)
        else:
            xz, xr, xh = np.split(xt @ kernel + bias, 3, axis=1)
            rz, rr = np.split(h @ recurrent[:, :2 * u], 2, axis=1)
            z, r = sigmoid(xz + rz), sigmoid(xr + rr)
            h = z * h + (1 - z) * np.tanh(xh + (r * h) @ recurrent[:, 2 * u:])
        hs.append(h)
    return np.stack(hs, axis=1), ([h, c] if kind == "LSTM" else [h])


def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * scale for w in model.get_weights()])
    return model


def rnn_model(kind, units=4, steps=5, features=3, **kwargs):
    inp = kc.Input(shape=(steps, features))
    return kc.Model(inp, getattr(L, kind)(units, **kwargs)(inp))


X = np.random.default_rng(1).standard_normal((3, 5, 3)).astype(np.float32)


@pytest.mark.parametrize("kind,weights", [("SimpleRNN", [(3, 4), (4, 4), (4,)]),
                                          ("LSTM", [(3, 16), (4, 16), (16,)]),
                                          ("GRU", [(3, 12), (4, 12), (2, 12)])])
def test_output_shapes_and_weight_layout(kind, weights):
    n_states = 2 if kind == "LSTM" else 1
    assert [w.shape for w in rnn_model(kind).get_weights()] == weights
    assert rnn_model(kind).output.shape == (None, 4)
    assert rnn_model(kind, return_sequences=True).output.shape == (None, 5, 4)
    outs = rnn_model(kind, return_state=True, go_backwards=True).output
    assert [o.shape for o in outs] == [(None, 4)] * (1 + n_states)
    outs = rnn_model(kind, return_sequences=True, return_state=True).output
    assert [o.shape for o in outs] == [(None, 5, 4)] + [(None, 4)] * n_states


def test_default_initializers():
    kc.utils.set_random_seed(0)
    lstm = rnn_model("LSTM", units=3).layers[-1]
    rec = lstm.recurrent_kernel.numpy()            # orthogonal: (3, 12) with orthonormal rows
    np.testing.assert_allclose(rec @ rec.T, np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(lstm.bias.numpy(), np.r_[np.zeros(3), np.ones(3), np.zeros(6)])
    no_forget = rnn_model("LSTM", units=3, unit_forget_bias=False).layers[-1]
    np.testing.assert_array_equal(no_forget.bias.numpy(), np.zeros(12))


@pytest.mark.parametrize("kind,kwargs", [
    ("SimpleRNN", {}), ("SimpleRNN", {"go_backwards": True}),
    ("LSTM", {}), ("LSTM", {"go_backwards": True}),
    ("GRU", {}), ("GRU", {"go_backwards": True}), ("GRU", {"reset_after": False})])
def test_matches_numpy_loop(kind, kwargs):
    model = randomize(rnn_model(kind, return_sequences=True, return_state=True, **kwargs))
    got = predict_ref(model, X)
    seq, states = numpy_rnn(kind, X, *model.get_weights(), go_backwards=kwargs.get("go_backwards", False),
                            reset_after=kwargs.get("reset_after", True))
    for g, w in zip(got, [seq, *states]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(X)[0].numpy(), seq, rtol=1e-5, atol=1e-5)   # eager mode too


def test_initial_state_and_stacking():
    inp = kc.Input(shape=(5, 3))
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(inp)
    out = L.GRU(4)(seq, initial_state=h)
    model = randomize(kc.Model(inp, [out, c]))
    got_out, got_c = predict_ref(model, X)
    w = model.get_weights()
    seq_np, (h_np, c_np) = numpy_rnn("LSTM", X, *w[:3])
    gru_np, _ = numpy_rnn("GRU", seq_np, *w[3:6])
    np.testing.assert_allclose(got_c, c_np, rtol=1e-5, atol=1e-5)
    # the GRU started from h, not zeros: compare with a NumPy loop that starts from h
    x = seq_np
    kernel, recurrent, bias = (a.astype(np.float64) for a in w[3:6])
    hh = h_np
    for t in range(x.shape[1]):
        xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=1)
        rz, rr, rh = np.split(hh @ recurrent + bias[1], 3, axis=1)
        z, r = sigmoid(xz + rz), sigmoid(xr + rr)
        hh = z * hh + (1 - z) * np.tanh(xh + r * rh)
    np.testing.assert_allclose(got_out, hh, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got_out, gru_np[:, -1], atol=1e-3)


def test_unsupported_arguments_and_bad_inputs():
    with pytest.raises(ValueError, match="stateful.*batch size must be static"):
        L.GRU(3, stateful=True)(kc.Input(shape=(4, 2)))
    with pytest.raises(ValueError, match="rnn_dyn.*go_backwards=True with return_sequences=True needs a static"):
        L.SimpleRNN(3, name="rnn_dyn", go_backwards=True, return_sequences=True)(kc.Input(shape=(None, 2)))
    with pytest.raises(ValueError, match="timesteps, features"):
        L.LSTM(3, name="rnn_rank")(kc.Input(shape=(4,)))
    lstm = L.LSTM(3, name="rnn_feat")
    lstm(kc.Input(shape=(4, 2)))
    with pytest.raises(ValueError, match="rnn_feat.*2 features"):
        lstm(kc.Input(shape=(4, 5)))


def test_config_round_trip():
    layer = L.GRU(5, reset_after=False, return_sequences=True, go_backwards=True, name="g")
    clone = L.GRU.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    lstm = L.LSTM.from_config(L.LSTM(2, unit_forget_bias=False, recurrent_activation="hard_sigmoid").get_config())
    assert lstm.unit_forget_bias is False and lstm.get_config()["recurrent_activation"] == "hard_sigmoid"


def sign_task(n=96, steps=6, seed=0):
    """Label 1 when the sequence's sum is positive."""
    x = np.random.default_rng(seed).standard_normal((n, steps, 2)).astype(np.float32)
    return x, (x.sum(axis=(1, 2)) > 0).astype(np.int32)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_fit_learns_sequence_sign_on_native_backend(kind):
    if not config.native_available():
        pytest.skip("native JIT not available")
    kc.utils.set_random_seed(0)
    x, y = sign_task()
    model = kc.Sequential([kc.Input(shape=(6, 2)), getattr(L, kind)(8), L.Dense(2, activation="softmax")])
    model.compile(kc.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="native")
    hist = model.fit(x, y, epochs=25, batch_size=32, verbose=0).history
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    assert hist["accuracy"][-1] > 0.85
    np.testing.assert_allclose(model.predict(x[:8], verbose=0), predict_ref(model, x[:8]), rtol=1e-5, atol=1e-5)


def test_native_compiled_graph_matches_reference():
    if not config.native_available():
        pytest.skip("native JIT not available")
    from kcompile.compiler.jit import compile_graph
    inp = kc.Input(shape=(5, 3))
    a = L.GRU(4, return_sequences=True, go_backwards=True)(inp)
    b = L.SimpleRNN(4, return_sequences=True)(a)
    model = randomize(kc.Model(inp, L.LSTM(3, return_state=True)(b)))
    graph = model.forward_graph()
    fn = compile_graph(graph)
    for got, want in zip(fn([X]), predict_ref(model, X)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_onnx_export_of_embedding_lstm(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from kcompile.compiler.onnx_export import export_onnx
    model = randomize(kc.Sequential([kc.Input(shape=(7,), dtype="int32"), L.Embedding(20, 5),
                                     L.LSTM(6, return_sequences=True), L.GRU(4, go_backwards=True),
                                     L.Dense(2)]))
    graph = model.forward_graph()
    sess = ort.InferenceSession(str(export_onnx(graph, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    tokens = np.random.default_rng(0).integers(0, 20, (4, 7)).astype(np.int32)
    got = sess.run(None, {graph.inputs[0].name: tokens})[0]
    np.testing.assert_allclose(got, predict_ref(model, tokens), rtol=0, atol=1e-5)


# -- Keras 3 parity ----------------------------------------------------------------------------
PARITY = [("SimpleRNN", {}), ("SimpleRNN", {"return_sequences": True, "go_backwards": True, "activation": "relu"}),
          ("LSTM", {}), ("LSTM", {"return_sequences": True, "return_state": True, "go_backwards": True}),
          ("LSTM", {"use_bias": False, "recurrent_activation": "hard_sigmoid"}),
          ("GRU", {}), ("GRU", {"reset_after": False, "return_state": True}),
          ("GRU", {"return_sequences": True, "go_backwards": True, "use_bias": False})]


@pytest.mark.parametrize("kind,kwargs", PARITY)
def test_keras_parity(kind, kwargs):
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")

    def build(layers, Input, Model):
        inp = Input(shape=(5, 3))
        return Model(inp, getattr(layers, kind)(4, **kwargs)(inp))
    ours, theirs = build(L, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    got = predict_ref(ours, X)
    want = theirs.predict(X, verbose=0)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, (list, tuple)) else [want]):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_one_sgd_step_matches_keras(kind):
    """Autodiff through the unrolled loop: one SGD step on MSE gives Keras 3's weights (1e-5)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")

    def build(layers, Input, Model):
        inp = Input(shape=(5, 3))
        return Model(inp, layers.Dense(2)(getattr(layers, kind)(4, return_sequences=True, go_backwards=True)(inp)))
    ours, theirs = build(L, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    before = ours.get_weights()
    y = np.random.default_rng(2).standard_normal((3, 5, 2)).astype(np.float32)
    ours.compile(kc.optimizers.SGD(0.5), "mse", backend="reference")
    theirs.compile(keras.optimizers.SGD(0.5), "mse")
    np.testing.assert_allclose(ours.train_on_batch(X, y), float(theirs.train_on_batch(X, y)), rtol=1e-5)
    for g, w, b in zip(ours.get_weights(), theirs.get_weights(), before):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)
        assert not np.allclose(g, b)   # every weight, recurrent kernel included, got a gradient


def test_eager_call_takes_numpy_initial_states():
    layer = kc.layers.LSTM(3)
    x = np.ones((2, 4, 5), "float32")
    zeros = [np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32")]
    np.testing.assert_allclose(layer(x, initial_state=zeros).numpy(), layer(x).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"initial state must have shape \(batch, 3\), got \(2, 4\)"):
        layer(x, initial_state=[np.zeros((2, 4), "float32")] * 2)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_one_scan_whatever_the_number_of_timesteps(kind):
    """The step is traced once into a scan body: the graph does not grow with the timesteps."""
    from kcompile.ir import parse_graph, print_graph
    graphs = [rnn_model(kind, steps=t, return_sequences=True).forward_graph() for t in (3, 40)]
    assert [[n.op for n in g.nodes].count("scan") for g in graphs] == [1, 1]
    assert len(graphs[0].nodes) == len(graphs[1].nodes)
    body = next(n for n in graphs[1].nodes if n.op == "scan").attrs["body"]
    assert not body.params and body.inputs[0].type.shape == ("N", 4)
    text = print_graph(graphs[1])
    assert print_graph(parse_graph(text)) == text


def test_gradient_tape_through_an_eager_recurrent_layer():
    """Eager calls record the scan; its gradient rule (a reverse scan) matches finite differences."""
    layer = L.GRU(3, return_sequences=True, go_backwards=True)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    with kc.GradientTape() as tape:
        y = layer(x)
        loss = kc.ops.sum(y * y)
    grad = np.asarray(tape.gradient(loss, layer.trainable_weights)[1])
    w = layer.trainable_weights[1]
    base, eps, idx = w.numpy().copy(), 1e-3, (1, 2)
    values = []
    for sign in (1, -1):
        shifted = base.copy()
        shifted[idx] += sign * eps
        w.assign(shifted)
        values.append(float(np.sum(np.asarray(layer(x), np.float64) ** 2)))
    w.assign(base)
    np.testing.assert_allclose(grad[idx], (values[0] - values[1]) / (2 * eps), rtol=2e-3)
