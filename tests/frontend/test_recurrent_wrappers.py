"""Bidirectional, TimeDistributed, RNN(cell) with built-in, stacked and user cells, recurrent dropout and
weight constraints: Keras 3 (jax) parity forward and for one SGD step (1e-5), native and ONNX Runtime
against the reference interpreter (1e-5), Keras's dropout semantics, and clear errors."""
import os

import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend import config

from model_helpers import predict_ref

L = kc.layers
os.environ.setdefault("KERAS_BACKEND", "jax")
X = np.random.default_rng(1).standard_normal((3, 5, 3)).astype(np.float32)


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras parity tests need KERAS_BACKEND=jax")
    return keras


def randomize(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * scale for w in model.get_weights()])
    return model


def _outs(x):
    return [np.asarray(o) for o in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]


def twins(build):
    keras = keras_or_skip()
    ours, theirs = build(kc), build(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    randomize(ours)
    theirs.set_weights(ours.get_weights())
    return keras, ours, theirs


def seq_model(wrap):
    def build(M):
        inp = M.Input(shape=(5, 3))
        return M.Model(inp, wrap(M.layers)(inp))
    return build


def minimal_cell_class(M):
    """The user cell of Keras's RNN guide, for kcompile or Keras (module M)."""
    class MinimalRNNCell(M.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units, self.state_size = units, units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), name="recurrent_kernel")

        def call(self, inputs, states):
            out = M.ops.matmul(inputs, self.kernel) + M.ops.matmul(states[0], self.recurrent_kernel)
            return out, [out]
    return MinimalRNNCell


MinimalRNNCell = minimal_cell_class(kc)


WRAPS = {
    "bi_concat_seq_state": lambda l: l.Bidirectional(l.LSTM(4, return_sequences=True, return_state=True)),
    "bi_sum": lambda l: l.Bidirectional(l.GRU(4), merge_mode="sum"),
    "bi_mul_seq": lambda l: l.Bidirectional(l.SimpleRNN(3, return_sequences=True), merge_mode="mul"),
    "bi_ave": lambda l: l.Bidirectional(l.LSTM(2), merge_mode="ave"),
    "bi_none_state": lambda l: l.Bidirectional(l.GRU(2, return_sequences=True, return_state=True), merge_mode=None),
    "bi_backward_layer": lambda l: l.Bidirectional(l.LSTM(3, return_sequences=True),
                                                   backward_layer=l.GRU(3, return_sequences=True, go_backwards=True)),
    "bi_rnn_cell": lambda l: l.Bidirectional(l.RNN(l.GRUCell(3), return_sequences=True)),
    "time_distributed": lambda l: l.TimeDistributed(l.Dense(4, activation="relu")),
    "rnn_lstm_cell": lambda l: l.RNN(l.LSTMCell(4), return_sequences=True, return_state=True),
    "rnn_stacked": lambda l: l.RNN([l.GRUCell(4, reset_after=False), l.SimpleRNNCell(2)], go_backwards=True,
                                   return_state=True),
}


@pytest.mark.parametrize("name", sorted(WRAPS))
def test_forward_matches_keras(name):
    _, ours, theirs = twins(seq_model(WRAPS[name]))
    want = _outs(theirs.predict(X, verbose=0))
    got = _outs(predict_ref(ours, X))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_user_cell_matches_keras():
    _, ours, theirs = twins(lambda M: seq_model(lambda l: M.layers.RNN(
        minimal_cell_class(M)(3), go_backwards=True))(M))
    np.testing.assert_allclose(predict_ref(ours, X), theirs.predict(X, verbose=0), rtol=1e-5, atol=1e-5)


def test_one_sgd_step_matches_keras():
    """Autodiff through both scans of a Bidirectional and a TimeDistributed head: one SGD step on MSE."""
    def build(M):
        inp = M.Input(shape=(5, 3))
        h = M.layers.Bidirectional(M.layers.LSTM(4, return_sequences=True))(inp)
        return M.Model(inp, M.layers.TimeDistributed(M.layers.Dense(2))(h))
    keras, ours, theirs = twins(build)
    y = np.random.default_rng(2).standard_normal((3, 5, 2)).astype(np.float32)
    ours.compile(kc.optimizers.SGD(0.5), "mse", backend="reference")
    theirs.compile(keras.optimizers.SGD(0.5), "mse")
    np.testing.assert_allclose(ours.train_on_batch(X, y), float(theirs.train_on_batch(X, y)), rtol=1e-5)
    for g, w in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


def test_native_and_onnx_agree_with_reference(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from kcompile.compiler.onnx_export import export_onnx
    inp = kc.Input(shape=(5, 3))
    h = L.Bidirectional(L.GRU(4, return_sequences=True))(inp)
    h = L.TimeDistributed(L.Dense(3))(h)
    model = randomize(kc.Model(inp, L.RNN([L.LSTMCell(3), MinimalRNNCell(2)])(h)))
    graph = model.forward_graph()
    want = predict_ref(model, X)
    if config.native_available():
        from kcompile.compiler.jit import compile_graph
        np.testing.assert_allclose(compile_graph(graph)([X])[0], want, rtol=1e-5, atol=1e-5)
    sess = ort.InferenceSession(str(export_onnx(graph, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {graph.inputs[0].name: X})[0], want, rtol=0, atol=1e-5)


# -- dropout and constraints ---------------------------------------------------------------------
def _linear_rnn(kernel, recurrent, **kwargs):
    layer = L.SimpleRNN(6, activation="linear", use_bias=False, return_sequences=True, **kwargs)
    layer(np.ones((1, 5, 6), np.float32))
    layer.set_weights([kernel, recurrent])
    return layer


def test_dropout_masks_are_fixed_across_timesteps():
    """Identity kernel, no recurrence: every step outputs the same input mask (values 0 or 1/(1-rate))."""
    eye, zeros, ones = np.eye(6, dtype=np.float32), np.zeros((6, 6), np.float32), np.ones((8, 5, 6), np.float32)
    layer = _linear_rnn(eye, zeros, dropout=0.5)
    y = layer(ones, training=True).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.2 < (y == 0).mean() < 0.8
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))     # the same at every step
    assert not np.array_equal(y[0, 0], y[1, 0]) or not np.array_equal(y[1, 0], y[2, 0])   # drawn per sample
    np.testing.assert_array_equal(layer(ones).numpy(), ones)                 # inference: no dropout
    # recurrent dropout: h_t = (h_{t-1} * m) @ I = m^t from h_0 = 1, with one mask for all steps
    layer = _linear_rnn(zeros, eye, recurrent_dropout=0.5)
    y = layer(ones, initial_state=np.ones((8, 6), np.float32), training=True).numpy()
    m = y[:, 0]
    for t in range(5):
        np.testing.assert_array_equal(y[:, t], m ** (t + 1))


def test_gru_per_gate_dropout_masks_in_training_only():
    layer = L.GRU(4, reset_after=False, dropout=0.3, recurrent_dropout=0.3)
    eager = layer(X, training=True).numpy()
    assert np.isfinite(eager).all() and not np.allclose(eager, layer(X).numpy())
    no_drop = L.GRU(4, reset_after=False)
    no_drop(X)
    no_drop.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(X).numpy(), no_drop(X).numpy(), rtol=1e-6)


def test_dropout_trains_natively_and_matches_reference(kind="LSTM"):
    if not config.native_available():
        pytest.skip("native JIT not available")
    kc.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((64, 6, 2)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int32)
    model = kc.Sequential([kc.Input(shape=(6, 2)),
                           getattr(L, kind)(8, dropout=0.2, recurrent_dropout=0.2, recurrent_constraint="non_neg"),
                           L.Dense(2, activation="softmax")])
    model.compile(kc.optimizers.Adam(0.02), "sparse_categorical_crossentropy", backend="native")
    hist = model.fit(x, y, epochs=8, batch_size=32, verbose=0).history
    assert hist["loss"][-1] < hist["loss"][0]
    assert (model.layers[0].recurrent_kernel.numpy() >= 0).all()   # the constraint ran after each update
    np.testing.assert_allclose(model.predict(x[:8], verbose=0), predict_ref(model, x[:8]), rtol=1e-5, atol=1e-5)


def test_config_round_trip_and_saving(tmp_path):
    inp = kc.Input(shape=(5, 3))
    h = L.Bidirectional(L.LSTM(3, return_sequences=True, dropout=0.1, kernel_constraint="max_norm"),
                        merge_mode="ave")(inp)
    h = L.TimeDistributed(L.Dense(2))(h)
    model = randomize(kc.Model(inp, L.RNN([L.GRUCell(2), L.SimpleRNNCell(2)])(h)))
    model.save(tmp_path / "m.keras")
    loaded = kc.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(predict_ref(loaded, X), predict_ref(model, X), rtol=1e-6, atol=1e-6)
    bi = loaded.layers[1]
    assert bi.merge_mode == "ave" and bi.backward_layer.go_backwards and bi.forward_layer.dropout == 0.1


def test_bad_wrappers_name_the_layer():
    with pytest.raises(ValueError, match=r"Bidirectional 'bi'.*recurrent layer.*Dense 'd'"):
        L.Bidirectional(L.Dense(3, name="d"), name="bi")
    with pytest.raises(ValueError, match=r"Bidirectional 'bi2'.*backward_layer.*Conv1D"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.Conv1D(2, 3), name="bi2")
    with pytest.raises(ValueError, match=r"bi3.*go_backwards"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3), name="bi3")
    with pytest.raises(ValueError, match=r"bi4.*merge_mode"):
        L.Bidirectional(L.LSTM(3), merge_mode="max", name="bi4")
    with pytest.raises(ValueError, match=r"RNN 'r'.*state_size"):
        L.RNN(L.Dense(3), name="r")
    with pytest.raises(ValueError, match=r"td.*timesteps"):
        L.TimeDistributed(L.Dense(3), name="td")(kc.Input(shape=(4,)))
    with pytest.raises(ValueError, match=r"Dropout.*draws random numbers.*td2"):
        L.TimeDistributed(L.Dropout(0.5), name="td2")(X, training=True)
