"""Several threads calling one compiled artifact and one model's predict at once get exactly what
serial calls get (the artifact's calls share its weights and code; the model compiles on first use)."""
import sys
import threading

import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.artifact import write_artifact
from kcompile.runtime import load

THREADS, CALLS = 6, 8


def _model():
    L = kc.layers
    inp = kc.Input((6, 6, 2))
    h = L.MaxPooling2D(2)(L.Conv2D(4, 3, padding="same", activation="relu")(inp))
    out = L.Dense(3, activation="softmax")(L.Dense(8, activation="tanh")(L.Flatten()(h)))
    return kc.Model(inp, out)


def _inputs(seed):
    """Per-thread, per-call inputs of varying batch sizes (workspaces and outputs differ per call)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1 + (seed * 7 + k) % 13, 6, 6, 2)).astype(np.float32) for k in range(CALLS)]


def _hammer(call, inputs_per_thread):
    """Start every thread at once (a barrier), each making its calls; returns results per thread."""
    barrier = threading.Barrier(len(inputs_per_thread))
    results, errors = {}, []

    def work(t):
        try:
            barrier.wait()
            results[t] = [call(x) for x in inputs_per_thread[t]]
        except BaseException as e:   # noqa: BLE001 - reported below with its thread
            errors.append((t, e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(inputs_per_thread))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    return results


def _assert_equal_to_serial(results, inputs_per_thread, call):
    for t, outs in results.items():
        for x, got in zip(inputs_per_thread[t], outs):
            np.testing.assert_array_equal(got, call(x), err_msg=f"thread {t}, batch {len(x)}")


@pytest.fixture
def frequent_thread_switches():
    """Switch threads every microsecond (default 5 ms), so that short critical sections interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_one_model_traced_from_many_threads_at_once(frequent_thread_switches):
    """Each thread has its own trace stack: before, one thread's trace was seen (and popped) by another
    ("a traced tensor from another trace was used inside the active trace")."""
    from kcompile.ir.text import print_graph
    L = kc.layers
    inp = kc.Input((5,))
    model = kc.Model(inp, L.Dense(3, activity_regularizer="l2")(L.Dense(8, activity_regularizer="l1")(inp)))
    results = _hammer(lambda _: print_graph(model.forward_graph()), {t: range(4) for t in range(THREADS)})
    want = print_graph(model.forward_graph())
    assert all(text == want for outs in results.values() for text in outs)


def test_one_artifact_called_from_many_threads(tmp_path, frequent_thread_switches):
    model = _model()
    art = load(write_artifact(model.forward_graph(), tmp_path / "art", "art"))
    inputs = {t: _inputs(t) for t in range(THREADS)}
    results = _hammer(art.predict, inputs)
    _assert_equal_to_serial(results, inputs, art.predict)


def test_one_models_predict_called_from_many_threads(frequent_thread_switches):
    model = _model()     # not called before: the threads race to trace and compile it first
    inputs = {t: _inputs(100 + t) for t in range(THREADS)}
    results = _hammer(lambda x: model.predict(x, verbose=0), inputs)
    _assert_equal_to_serial(results, inputs, lambda x: model.predict(x, verbose=0))
