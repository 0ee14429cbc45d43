"""The artifact's fast call path (ir/call_plan.py through the packed entry point): same results as the
checked path, the usual errors, thread-safe, and older artifacts without a packed entry still run."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kcompile.compiler.artifact import write_artifact
from kcompile.ir import call_plan
from kcompile.runtime import load
from kcompile.runtime.native import ArtifactError

from artifact_util import small_model


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return write_artifact(small_model(), tmp_path_factory.mktemp("art") / "small", "small")


def _x(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 7)).astype(np.float32)


@pytest.mark.parametrize("batch", [1, 3, 700])   # 700 rows (19.6 KB) go by pointer, not staged
def test_fast_equals_checked_path(path, batch):
    model = load(path)
    x = _x(batch, batch)
    want = model._run("forward", [x])
    assert model._forward_plan(), "the artifact has a packed entry point"
    for got in (model(x), model.predict(x)):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    a, b = model(x), model(x)
    assert not np.shares_memory(a[0], b[0])    # fresh outputs every call


def test_wrong_inputs_raise_the_usual_errors(path):
    model = load(path)
    with pytest.raises(ValueError, match=r"\[N, 7\]|7"):
        model(np.zeros((2, 6), np.float32))
    with pytest.raises((ValueError, TypeError)):
        model(np.zeros((2, 7), np.complex64))
    x = _x(2)
    np.testing.assert_allclose(model(x.astype(np.float64))[0], model(x)[0], rtol=1e-6)   # converted
    np.testing.assert_array_equal(model(np.asfortranarray(np.repeat(x, 2, 0)))[0], model(np.repeat(x, 2, 0))[0])


def test_set_weights_and_nthreads_apply(path):
    model = load(path)
    x = _x(4, 1)
    before = model(x)[0]
    model.set_weights([w * 2 for w in model.get_weights()])
    after = model(x)[0]
    assert not np.allclose(before, after)
    np.testing.assert_array_equal(after, model._run("forward", [x])[0])
    plan = model._forward_plan()
    model.nthreads = 2
    assert model._forward_plan() is not plan and model.nthreads == 2
    np.testing.assert_allclose(model(x)[0], after, rtol=1e-6)


def test_older_artifact_without_packed_entry(path, monkeypatch):
    model = load(path)
    real = model._code.address

    def address(symbol):
        if symbol.endswith("_packed"):
            raise ArtifactError(f"the library has no entry point '{symbol}'")
        return real(symbol)
    monkeypatch.setattr(model._code, "address", address)
    x = _x(2, 2)
    assert model._forward_plan() is False
    np.testing.assert_array_equal(model(x)[0], model._run("forward", [x])[0])


def test_two_threads_one_artifact(path):
    model = load(path)
    xs = [_x(b, b) for b in (1, 2, 700, 1)]
    want = [model._run("forward", [x]) for x in xs]

    def worker(k):
        for i in range(300):
            j = (i + k) % len(xs)
            for g, w in zip(model(xs[j]), want[j]):
                np.testing.assert_array_equal(g, w)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(worker, range(2)))   # re-raises a worker's failure here


def test_slots_are_bounded_per_thread(path):
    model = load(path)
    for batch in range(1, 3 + call_plan.SLOTS_PER_THREAD * 2):
        model(_x(batch))
    assert len(model._forward_plan()._local.slots) == call_plan.SLOTS_PER_THREAD
