"""The train step announced by model.compile(), compiled in a forked child beside the first predict's
compile (compiler/background_compile.py, frontend/training/train_prefetch.py): the child leaves the
kernels this process compiles to it, lists them (and their callees) in its cache entry, and the
first train step loads that entry instead of compiling; the results are those of a fresh compile."""
import os
import time

import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler import background_compile, jit, kernel_library
from kcompile.compiler.disk_cache import DiskCache
from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.compiler.jit import NativeFunction
from kcompile.ir import GraphBuilder, TensorType

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
SPARE_CORE = background_compile.spare_core    # (the fixture pretends there is one)


@pytest.fixture(autouse=True)
def _background_on(monkeypatch, tmp_path):
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KCOMPILE_BACKGROUND_COMPILE", "1")
    monkeypatch.setattr(background_compile, "parallel_allowed", lambda: True)
    monkeypatch.setattr(background_compile, "spare_core", lambda: True)
    monkeypatch.setattr("kcompile.compiler.driver.parallel_allowed", lambda: False)   # no kernel helper
    kernel_library.forget_in_memory()
    yield
    background_compile.wait()
    background_compile.cancel()
    kernel_library.forget_in_memory()


def _model(width, backend=None):
    L = kc.layers
    model = kc.Sequential([kc.Input((13,)), L.Dense(width, activation="relu"), L.Dense(5, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
    return model


def _data():
    x = (np.arange(9 * 13, dtype=np.float32).reshape(9, 13) % 7 - 3) / 4
    return x, np.arange(9) % 5


def _step_compilation(model):
    (runner,) = model._compiled.step_cache.values()
    return runner.execute.compilation


def test_the_first_train_step_loads_what_the_child_compiled_beside_the_first_predict():
    model, x, y = _model(37), *_data()
    reference = _model(37, backend="reference")
    reference.set_weights(model.get_weights())
    model.predict_on_batch(x)                       # forks the child at its LLVM work
    assert background_compile.running()
    loss = model.train_on_batch(x, y)
    c = _step_compilation(model)
    assert not background_compile.running()
    assert c.persisted is not None and c.stage_runs["native"] == 0     # loaded, not compiled here
    np.testing.assert_allclose(loss, reference.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_train_step_asked_for_first_cancels_the_announcement():
    model, x, y = _model(41), *_data()
    model.train_on_batch(x, y)
    assert not background_compile.running() and background_compile._pending is None


@pytest.mark.parametrize("setting", ["0", ""])
def test_off_unless_asked_for(monkeypatch, setting):
    monkeypatch.setenv("KCOMPILE_BACKGROUND_COMPILE", setting)
    model, x, _ = _model(43), *_data()
    model.predict_on_batch(x)
    assert not background_compile.running()


def test_not_started_without_an_idle_core(monkeypatch):
    monkeypatch.setattr(background_compile.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(background_compile, "_runnable", lambda: 2)     # this process and another
    assert not SPARE_CORE()
    monkeypatch.setattr(background_compile, "_runnable", lambda: 1)     # this process alone
    assert SPARE_CORE()
    monkeypatch.setattr(background_compile, "_runnable", lambda: None)  # no /proc: the load average
    monkeypatch.setattr(background_compile.os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    assert not SPARE_CORE()
    monkeypatch.setattr(background_compile.os, "getloadavg", lambda: (1.2, 2.0, 2.0))
    assert SPARE_CORE()


def _dense(k, n, name):
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", k]))
    w = b.param("w", (np.arange(k * n, dtype=np.float32).reshape(k, n) % 7 - 3) / 8)
    return b.build([b.relu(b.matmul(x, w))])


def test_promised_kernels_are_left_out_and_listed_with_their_callees(tmp_path):
    cache = DiskCache(tmp_path)
    first = Compilation({"forward": _dense(70, 40, "one")}, "one", CompileOptions(), disk_cache=cache,
                        kernel_library=True)
    first.native
    promised = first.kernels.needed()
    assert any(calls for calls in promised.values())          # the tile dispatchers call micro-kernels
    jit.precompile(_dense(70, 40, "two"), promised)           # as the child: nothing of them compiled
    second = jit._compilation(_dense(70, 40, "two"))
    hit = second.disk_cache.get(second.persistent_key)
    listed = set(hit[0]["kernels"])
    callees = {k for calls in promised.values() for k in calls.values()}
    assert callees and callees <= listed <= set(promised)
    assert second.persisted is None                           # the promised kernels are not there yet
    NativeFunction(first.entries["forward"], first)           # this process compiles them ...
    second = jit._compilation(_dense(70, 40, "two"))
    fn = NativeFunction(second.entries["forward"], second)    # ... and the entry loads
    assert second.persisted is not None and second.stage_runs["native"] == 0
    x = (np.arange(6 * 70, dtype=np.float32).reshape(6, 70) % 5 - 2) / 4
    np.testing.assert_array_equal(fn([x])[0], np.maximum(x @ second.entries["forward"].param_values["w"], 0))


def test_a_stuck_child_is_killed_after_the_wait_limit():
    background_compile.request(lambda promised: time.sleep(60))
    assert background_compile.start({})
    handoff_file = background_compile._child[2]
    t0 = time.monotonic()
    background_compile.wait(limit_s=0.2)
    assert time.monotonic() - t0 < 5 and not background_compile.running()
    assert not os.path.exists(handoff_file)


def test_a_share_handed_to_the_parent_is_compiled_there_and_the_entry_loads(monkeypatch, tmp_path):
    """The child hands the parent (idle once its own compile is done) a balanced share of its jobs: with
    the parent's work done already, all but what balances the child's glue; wait() compiles them."""
    read_end, write_end = os.pipe()
    path = str(tmp_path / "handed.pickle")
    monkeypatch.setattr(background_compile, "child_handoff", background_compile.Handoff(write_end, path, 0.0))
    c = jit._compilation(_dense(50, 24, "handed"))
    c.store({})
    assert c.kernels.handed and c.kernels.handed <= set(c.kernels.manifest())
    assert all(kernel_library._lookup(k, None) is None for k in c.kernels.handed)   # not compiled in "the child"
    background_compile._compile_handed(read_end, path, time.monotonic() + 60)
    os.close(read_end)
    again = jit._compilation(_dense(50, 24, "handed"))
    fn = NativeFunction(again.entries["forward"], again)
    assert again.persisted is not None and again.stage_runs["native"] == 0
    x = (np.arange(4 * 50, dtype=np.float32).reshape(4, 50) % 5 - 2) / 4
    np.testing.assert_array_equal(fn([x])[0], np.maximum(x @ again.entries["forward"].param_values["w"], 0))
