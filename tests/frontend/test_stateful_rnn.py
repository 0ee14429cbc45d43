"""stateful=True RNNs (Keras 3): states carried from call to call, reset_state, the static batch size
requirement and its errors; eager calls against Keras 3 (jax) on the same weights, predict (native and
reference), evaluate and fit carrying the states the same way, and the weights list unchanged.

Keras 3 on JAX carries the states only through eager calls (its predict/fit are stateless and leave
them at zero); kcompile carries them through predict, evaluate and fit too, as Keras documents."""
import os

import numpy as np
import pytest

import kcompile as kc

L = kc.layers
os.environ.setdefault("KERAS_BACKEND", "jax")
RNG = np.random.default_rng(3)
XS = [RNG.standard_normal((4, 5, 3)).astype(np.float32) for _ in range(3)]


def keras_or_skip():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras parity tests need KERAS_BACKEND=jax")
    return keras


def build(M, batch=4):
    inp = M.Input(shape=(5, 3), batch_size=batch)
    x = M.layers.LSTM(6, stateful=True, return_sequences=True)(inp)
    x = M.layers.RNN(M.layers.GRUCell(4), stateful=True)(x)
    return M.Model(inp, M.layers.Dense(2)(x))


def reset(model):
    for layer in model.layers:
        if getattr(layer, "stateful", False) or hasattr(layer, "forward_layer"):
            layer.reset_state()


@pytest.fixture(scope="module")
def pair():
    keras = keras_or_skip()
    ours, theirs = build(kc), build(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    expected = [np.asarray(theirs(x)) for x in XS]   # Keras's eager calls carry the states
    return ours, theirs, expected


def test_eager_calls_carry_states_as_keras(pair):
    ours, _, expected = pair
    reset(ours)
    got = [np.asarray(ours(x)) for x in XS]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, atol=1e-5)
    assert np.abs(got[1] - np.asarray(ours.predict(XS[1], batch_size=4, verbose=0))).max() > 1e-3  # states moved on
    reset(ours)
    np.testing.assert_allclose(np.asarray(ours(XS[0])), expected[0], atol=1e-5)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_predict_evaluate_fit_carry_states(pair, backend):
    ours, _, expected = pair
    ours.compile(kc.optimizers.SGD(0.0), "mse", backend=backend)   # lr 0: the weights stay Keras's
    reset(ours)
    for x, e in zip(XS, expected):
        np.testing.assert_allclose(ours.predict(x, batch_size=4, verbose=0), e, atol=1e-5)
    reset(ours)
    ours.evaluate(XS[0], np.zeros((4, 2), np.float32), batch_size=4, verbose=0)
    np.testing.assert_allclose(ours.predict(XS[1], batch_size=4, verbose=0), expected[1], atol=1e-5)
    reset(ours)
    ours.fit(np.concatenate(XS[:2]), np.zeros((8, 2), np.float32), batch_size=4, shuffle=False, verbose=0)
    np.testing.assert_allclose(ours.predict(XS[2], batch_size=4, verbose=0), expected[2], atol=1e-5)
    lstm = ours.layers[1]
    assert [v.shape for v in lstm.states] == [(4, 6), (4, 6)] and not any(v.trainable for v in lstm.states)
    reset(ours)
    assert all(not v.numpy().any() for v in lstm.states)


def test_bidirectional_stateful_and_config_round_trip():
    keras = keras_or_skip()

    def bidi(M):
        inp = M.Input(batch_shape=(2, 5, 3))
        return M.Model(inp, M.layers.Bidirectional(M.layers.GRU(3, stateful=True))(inp))
    ours, theirs = bidi(kc), bidi(keras)
    theirs.set_weights(ours.get_weights())
    xs = [x[:2] for x in XS]
    for x in xs:
        np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(theirs(x)), atol=1e-5)
    ours.layers[1].reset_state()
    ours.compile("sgd", "mse")
    theirs.layers[1].reset_state()
    for x in xs:
        np.testing.assert_allclose(ours.predict(x, batch_size=2, verbose=0), np.asarray(theirs(x)), atol=1e-5)
    again = kc.Model.from_config(ours.get_config())
    assert again.layers[1].forward_layer.stateful and again.layers[0].batch_size == 2


def test_stateful_errors_name_the_layer(pair):
    ours = pair[0]
    with pytest.raises(ValueError, match="'lstm_dyn'.*batch size must be static"):
        L.LSTM(3, stateful=True, name="lstm_dyn")(kc.Input(shape=(5, 3)))
    with pytest.raises(ValueError, match="stateful.*Expected batch size: 4; received batch size: 8"):
        ours.predict(np.zeros((8, 5, 3), np.float32), batch_size=8, verbose=0)
    with pytest.raises(ValueError, match="Expected batch size: 4; received batch size: 2"):
        ours.predict(np.zeros((6, 5, 3), np.float32), batch_size=4, verbose=0)   # the last batch has 2 rows
    layer = L.SimpleRNN(2, stateful=True, name="eager_rnn")
    layer(np.zeros((3, 4, 1), np.float32))
    with pytest.raises(ValueError, match="'eager_rnn'.*Expected batch size: 3; received batch size: 5"):
        layer(np.zeros((5, 4, 1), np.float32))
