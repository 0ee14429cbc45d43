"""predict_on_batch / predict(verbose=0) through the prepared native call (frontend/training/fast_predict.py):
same results as the slow path, invalidated by every state change, the usual errors, thread-safe."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.frontend.training import fast_predict

from model_helpers import predict_ref, rand


def _mlp(seed=0):
    kc.utils.set_random_seed(seed)
    return kc.Sequential([kc.Input((40,)), layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")])


def _slow(model, x):
    outs = model._predict_batch(model._prepare_x(x))
    return outs[0] if len(outs) == 1 else outs


def _prepared(model, x):
    """Call once (slow path, which prepares), then check the fast path is ready and used."""
    model.predict_on_batch(x)
    assert fast_predict.current(model) is not None, "predict_on_batch did not prepare a fast call"


def test_fast_path_is_taken_and_equals_slow_path(monkeypatch):
    model = _mlp()
    # batch 1 and 3 are staged (small); 200 rows of 40 floats (32 KB) go by pointer
    for batch in (1, 3, 200):
        x = rand(batch, 40, seed=batch)
        _prepared(model, x)
        want = _slow(model, x)
        monkeypatch.setattr(type(model), "_predict_batch", lambda *a: pytest.fail("took the slow path"))
        got = model.predict_on_batch(x)
        got_predict = model.predict(x, batch_size=64, verbose=0)
        monkeypatch.undo()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_predict, want)
        np.testing.assert_allclose(got, predict_ref(model, x), rtol=1e-5, atol=1e-6)


def test_outputs_are_fresh_arrays():
    model = _mlp()
    x1, x2 = rand(1, 40, seed=1), rand(1, 40, seed=2)
    _prepared(model, x1)
    a = model.predict_on_batch(x1)
    b = model.predict_on_batch(x2)
    assert a is not b and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, model.predict_on_batch(x1))


@pytest.mark.parametrize("change", ["set_weights", "assign", "compile_reference", "add_layer"])
def test_state_changes_invalidate(change):
    model = _mlp()
    x = rand(2, 40, seed=3)
    _prepared(model, x)
    before = model.predict_on_batch(x)
    if change == "set_weights":
        model.set_weights([w * 2 for w in model.get_weights()])
    elif change == "assign":
        kernel = model.layers[-1].kernel
        kernel.assign(kernel.numpy() * 3.0)   # (a constant shift would cancel in the softmax)
    elif change == "compile_reference":
        model.compile(optimizer="sgd", loss="mse", backend="reference")
    else:
        model.add(layers.Dense(3))
    assert fast_predict.current(model) is None
    after = model.predict_on_batch(x)
    np.testing.assert_allclose(after, predict_ref(model, x), rtol=1e-5, atol=1e-6)
    if change in ("set_weights", "assign"):
        assert not np.allclose(after, before)
    if change == "compile_reference":
        assert fast_predict.current(model) is None      # the reference backend has no native plan
        np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
    else:
        assert fast_predict.current(model) is not None  # prepared again


def test_in_place_training_keeps_the_plan_and_its_effect_shows():
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    x, y = rand(8, 40, seed=4), rand(8, 10, seed=5)
    _prepared(model, x)
    before = model.predict_on_batch(x)
    model.train_on_batch(x, y)
    after = model.predict_on_batch(x)
    np.testing.assert_allclose(after, predict_ref(model, x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(after, before)


def test_wrong_inputs_get_the_usual_errors_and_conversions():
    model = _mlp()
    x = rand(2, 40, seed=6)
    _prepared(model, x)
    with pytest.raises(ValueError, match="40"):
        model.predict_on_batch(rand(2, 41))
    with pytest.raises(ValueError):
        model.predict_on_batch(rand(2, 40, 1))
    # float64 and non-contiguous inputs take the slow path, which converts them
    np.testing.assert_allclose(model.predict_on_batch(x.astype(np.float64)), model.predict_on_batch(x), rtol=1e-6)
    wide = np.repeat(x, 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(model.predict_on_batch(np.ascontiguousarray(wide)), model.predict_on_batch(wide))
    assert fast_predict.current(model) is not None


def test_two_threads_one_model():
    model = _mlp()
    xs = [rand(b, 40, seed=10 + b) for b in (1, 5, 1, 7)]
    _prepared(model, xs[0])
    want = [_slow(model, x) for x in xs]

    def worker(k):
        for step in range(200):
            i = (k + step) % len(xs)
            np.testing.assert_array_equal(model.predict_on_batch(xs[i]), want[i])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(worker, range(2)))   # re-raises a worker's failure here
