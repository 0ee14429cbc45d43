"""The tiered JIT (compiler/tier_up.py): a cold compile runs O0 code at once, a forked child compiles the
optimized code into the disk cache, and a watcher thread publishes it through the entry stubs; results
are the reference interpreter's in both tiers, and a failed child still ends in optimized code."""
import os
import threading
import time

import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler import driver, fork_compile, kernel_library, tier_up
from kcompile.compiler.codelib import JITEngine
from kcompile.compiler.jit import NativeFunction
from kcompile.ir.thread_tuner import RETUNE, TRIALS, ThreadTuner

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture(autouse=True)
def _tiered(monkeypatch, tmp_path):
    monkeypatch.setenv("KCOMPILE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KCOMPILE_TIER_UP", "1")
    monkeypatch.setattr(driver, "parallel_allowed", lambda: True)    # (pytest's workers may run threads)
    monkeypatch.setattr(kernel_library, "compile_all", _in_process)   # no kernel helper beside
    kernel_library.forget_in_memory()
    yield
    assert tier_up.wait(120)
    kernel_library.forget_in_memory()


def _in_process(jobs, compile_one, beside=None, *_, **__):
    if beside is not None:
        beside()
    return {key: compile_one(payload) for key, payload in jobs}


def _model(width, backend=None, seed=0):
    L = kc.layers
    kc.utils.set_random_seed(seed)
    model = kc.Sequential([kc.Input((13,)), L.Dense(width, activation="relu"), L.Dense(5, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], backend=backend)
    return model


def _data(rows=9):
    x = (np.arange(rows * 13, dtype=np.float32).reshape(rows, 13) % 7 - 3) / 4
    return x, np.arange(rows) % 5



def _engines():
    from kcompile.compiler import jit
    return {fn.compilation.name: fn._engine for fn in jit._CACHE.values()}


def test_a_cold_predict_runs_tier0_then_tier1_with_the_references_results():
    jit_cache_clear()
    model, x = _model(41), _data()[0]
    reference = _model(41, backend="reference")
    reference.set_weights(model.get_weights())
    want = reference.predict_on_batch(x)
    first = model.predict_on_batch(x)
    (engine,) = [e for e in _engines().values() if isinstance(e, tier_up.TieredEngine)]
    np.testing.assert_allclose(first, want, rtol=1e-5, atol=1e-6)
    assert tier_up.wait(120) and engine.tier == 1 and engine.failure is None
    np.testing.assert_allclose(model.predict_on_batch(x), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict_on_batch(x[:1]), want[:1], rtol=1e-5, atol=1e-6)


def test_the_child_fills_the_disk_cache_so_the_next_compile_loads_tier1_directly():
    jit_cache_clear()
    model, x = _model(43), _data()[0]
    model.predict_on_batch(x)
    assert tier_up.wait(120)
    (fn,) = [fn for fn in jit_functions() if not fn.compilation.name.endswith("train_step")]
    again = driver.Compilation(fn.compilation.entries, fn.compilation.name, fn.compilation.options,
                               disk_cache=fn.compilation.disk_cache, kernel_library=True)
    kernel_library.forget_in_memory()
    assert again.persisted is not None and not again._tiered
    assert isinstance(again.engine, JITEngine)
    loaded = NativeFunction(fn.graph, again)       # the entry and the kernels it lists link and run
    np.testing.assert_allclose(loaded([x])[0], model.predict_on_batch(x), rtol=1e-6, atol=1e-7)


def test_training_links_the_forward_passes_tier0_kernels_and_matches_the_reference():
    jit_cache_clear()
    model, (x, y) = _model(47), _data()
    reference = _model(47, backend="reference")
    reference.set_weights(model.get_weights())
    model.predict_on_batch(x)
    step = model.train_on_batch(x, y)
    steps = [c for c in jit_functions() if c.compilation.name.endswith("train_step")]
    assert steps and steps[0].compilation.kernels.tier0_objects   # the forward's O0 kernels, not compiled again
    assert step == pytest.approx(reference.train_on_batch(x, y), rel=1e-5)
    assert tier_up.wait(120)
    assert all(e.tier == 1 and e.failure is None for e in _engines().values() if isinstance(e, tier_up.TieredEngine))
    for _ in range(3):
        assert model.train_on_batch(x, y) == pytest.approx(reference.train_on_batch(x, y), rel=1e-4)
    for got, want in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_a_failed_child_leaves_tier1_to_the_watcher(monkeypatch):
    jit_cache_clear()

    def fail(self):
        raise RuntimeError("the child fails")
    monkeypatch.setattr(driver.Compilation, "_tier_up_child", fail)
    model, x = _model(53), _data()[0]
    first = model.predict_on_batch(x)
    assert tier_up.wait(120)
    (engine,) = [e for e in _engines().values() if isinstance(e, tier_up.TieredEngine)]
    assert engine.tier == 1 and engine.failure is None      # compiled by the watcher itself
    np.testing.assert_allclose(model.predict_on_batch(x), first, rtol=1e-6)


def test_off_when_turned_off_or_without_a_disk_cache(monkeypatch):
    for env in ({"KCOMPILE_TIER_UP": "0"}, {"KCOMPILE_DISABLE_CACHE": "1"}):
        jit_cache_clear()
        kernel_library.forget_in_memory()
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            _model(59).predict_on_batch(_data()[0])
            assert all(isinstance(e, JITEngine) for e in _engines().values()), env


def test_no_fork_from_another_thread_than_the_main_one():
    seen = []
    t = threading.Thread(target=lambda: seen.append(fork_compile.parallel_allowed()))
    t.start()
    t.join()
    assert seen == [False]


def test_stubs_forward_every_exported_entry_with_its_exact_signature():
    text = tier_up.stub_module_text([("f_p", "i32", ["ptr", "i64", "i32"])], "x86_64-unknown-linux-gnu")
    assert '@"kc.tier.f_p" = global ptr null' in text
    assert "musttail call i32 %f(ptr %a0, i64 %a1, i32 %a2)" in text


def test_a_tuner_times_both_counts_again_after_retune(monkeypatch):
    monkeypatch.setattr("kcompile.ir.thread_tuner.tunable_offer", lambda: 2)
    tuner = ThreadTuner()
    for _ in range(2 * TRIALS + 1):
        n = tuner.limit(8)
        tuner.record(8, n, 0.001 if n == 1 else 0.002)
    assert tuner.chosen(8) == 1 and tuner.steady(8) == 1
    tuner.retune()
    assert tuner.steady(8) is None                       # a trial starts at the next call
    counts = []
    for _ in range(2 * TRIALS + 1):
        counts.append(tuner.limit(8))
        tuner.record(8, counts[-1], 0.002 if counts[-1] == 1 else 0.0005)
    assert set(counts) == {1, 2} and tuner.chosen(8) == 2
    assert tuner._trials[8].interval == RETUNE


def jit_functions():
    from kcompile.compiler import jit
    return list(jit._CACHE.values())


def jit_cache_clear():
    from kcompile.compiler import jit
    with jit._CACHE_LOCK:
        jit._CACHE.clear()


def test_every_fork_waits_for_the_locks_a_watcher_holds():
    """A child forked while a watcher held the watcher list's lock (or LLVM_LOCK) would wait on it for
    ever (parallel_allowed() reads the list in the child): the at-fork hooks hold both across os.fork."""
    from kcompile.compiler.codelib import LLVM_LOCK
    held = threading.Event()

    def watcher_like():
        with LLVM_LOCK, tier_up._lock:
            held.set()
            time.sleep(0.3)
    t = threading.Thread(target=watcher_like)
    t.start()
    held.wait()
    pid = os.fork()           # waits for the thread to let go
    if pid == 0:
        ok = tier_up._lock.acquire(timeout=2) and LLVM_LOCK.acquire(timeout=2)
        os._exit(0 if ok else 1)
    t.join()
    assert os.waitpid(pid, 0)[1] == 0


def test_a_process_forked_meanwhile_publishes_tier1_itself():
    """multiprocessing's fork start method after a cold predict: the forked process has no watcher (threads
    do not survive a fork); it adopts the tier-0 engine, finds tier 1 in the cache and publishes it."""
    jit_cache_clear()
    model, x = _model(79), _data()[0]
    want = model.predict_on_batch(x)
    (engine,) = [e for e in _engines().values() if isinstance(e, tier_up.TieredEngine)]
    assert engine.tier == 0 and engine in tier_up._pending     # (the parent's child is still compiling)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            ok = tier_up.wait(60) and engine.tier == 1 and engine.failure is None
            ok = ok and np.allclose(model.predict_on_batch(x), want, rtol=1e-6, atol=1e-7)
            os.write(write_end, b"1" if ok else b"0")
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    got = os.read(read_end, 1)
    os.close(read_end)
    assert os.waitpid(pid, 0)[1] == 0 and got == b"1"


def test_the_watchers_fallback_compile_is_never_tiered(monkeypatch):
    jit_cache_clear()
    monkeypatch.setattr(driver.Compilation, "_tier_up_child", lambda self: os._exit(3))
    forks = []
    real = tier_up.fork_child
    monkeypatch.setattr(tier_up, "fork_child", lambda work: forks.append(threading.current_thread()) or real(work))
    _model(61).predict_on_batch(_data()[0])
    assert tier_up.wait(120)
    assert forks == [threading.main_thread()]      # the watcher compiled tier 1 itself, without forking


def test_long_loops_compile_optimized_code_first():
    """fit over >= LONG_RUN_STEPS steps (and predict/evaluate over as many batches) gains nothing from
    tier 0: its compiles are not tiered; a short fit's are."""
    from kcompile.frontend.training.backend import LONG_RUN_STEPS
    x, y = _data()
    jit_cache_clear()
    model = _model(67)
    model.fit(x, y, batch_size=1, epochs=-(-LONG_RUN_STEPS // len(x)), verbose=0)
    assert all(isinstance(e, JITEngine) for e in _engines().values())
    jit_cache_clear()
    kernel_library.forget_in_memory()
    model = _model(71)
    model.fit(x, y, batch_size=3, epochs=1, verbose=0)
    assert any(isinstance(e, tier_up.TieredEngine) for e in _engines().values())
    assert tier_up.enabled()


def test_a_running_child_holds_one_core_of_the_thread_budget(monkeypatch):
    """Default-offer calls leave the child its core (tier 0 on every core starved it)."""
    from kcompile.ir.thread_budget import BUDGET
    jit_cache_clear()
    real = driver.Compilation._tier_up_child
    monkeypatch.setattr(driver.Compilation, "_tier_up_child", lambda self: (time.sleep(1.0), real(self)))
    before = BUDGET.busy
    _model(73).predict_on_batch(_data()[0])
    assert BUDGET.busy == before + 1
    assert tier_up.wait(120)
    assert BUDGET.busy == before
