"""Threads by default: the offer (cores, overrides), the process-wide budget, each kernel's cost model,
threaded results equal to one thread's, idle workers that do not spin, and models called from
several Python threads at once."""
import ctypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.ir.thread_tuner import MAX_BACKOFF, RETUNE, TRIALS, ThreadTuner
from kcompile.compiler.threads import LAUNCH_SYMBOL, LAUNCH_TYPE
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir import thread_budget as tb


@pytest.fixture
def four_cores(monkeypatch):
    """Pretend this process may run on 4 CPUs, with no override in force."""
    monkeypatch.setattr(tb, "machine_threads", lambda: 4)
    monkeypatch.delenv(tb.ENV_VAR, raising=False)
    tb.set_num_threads(None)
    yield
    tb.set_num_threads(None)


def _mlp(name, din=256, dh=256, dout=10, seed=0):
    rng = np.random.default_rng(seed)
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", din]))
    h = b.relu(b.add(b.matmul(x, b.param("w0", rng.standard_normal((din, dh)).astype(np.float32))),
                     b.param("b0", rng.standard_normal(dh).astype(np.float32))))
    y = b.softmax(b.matmul(h, b.param("w1", rng.standard_normal((dh, dout)).astype(np.float32))))
    return b.build([y], ["y"])


def _convnet(name, seed=0):
    rng = np.random.default_rng(seed)
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", 16, 16, 3]))
    k = b.param("k", rng.standard_normal((3, 3, 3, 16)).astype(np.float32))
    h = b.max_pool2d(b.relu(b.add(b.conv2d(x, k), b.param("c", rng.standard_normal(16).astype(np.float32)))),
                     pool_size=(2, 2), strides=(2, 2))
    h = b.reshape(h, shape=("N", 7 * 7 * 16))
    return b.build([b.matmul(h, b.param("w", rng.standard_normal((7 * 7 * 16, 5)).astype(np.float32)))], ["y"])


# -- the offer and the budget -----------------------------------------------------------------------
def test_default_offer_is_the_cores_and_overrides_win(four_cores, monkeypatch):
    assert tb.get_num_threads() == 4 and tb.tunable_offer() == 4
    monkeypatch.setenv(tb.ENV_VAR, "3")
    assert tb.get_num_threads() == 3 and tb.tunable_offer() is None
    tb.set_num_threads(1)   # the API wins over the variable
    assert tb.get_num_threads() == 1
    tb.set_num_threads(None)
    assert tb.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -2, 1.5, "two"])
def test_bad_thread_counts_are_refused(bad, four_cores, monkeypatch):
    with pytest.raises(ValueError, match="positive integer number of threads"):
        tb.set_num_threads(bad)
    monkeypatch.setenv(tb.ENV_VAR, str(bad))
    with pytest.raises(ValueError, match="KCOMPILE_NUM_THREADS"):
        tb.get_num_threads()


def test_calls_in_flight_share_the_cores(four_cores):
    budget = tb.ThreadBudget()
    first = budget.acquire()
    assert first == 4
    assert budget.acquire() == 1            # every core taken: a second call runs on its own thread
    budget.release(1)
    budget.release(first)
    assert budget.acquire(limit=2) == 2     # the tuner's limit
    assert budget.acquire() == 2            # what the first left
    assert budget.acquire(requested=3) == 3  # an explicit count is honored as given...
    assert budget.busy == 7 and budget.acquire() == 1   # ...and counted
    tb.set_num_threads(1)
    assert tb.ThreadBudget().acquire() == 1


# -- each kernel's cost model ------------------------------------------------------------------------
class _RecordingLauncher:
    """Stands in for GOMP_parallel in one compiled module: records each region's thread count and runs
    the worker on the calling thread (workers take tasks from a counter, so one worker does them all)."""

    def __init__(self, fn):
        self.counts = []
        self._slot = fn.compilation.engine.global_address(LAUNCH_SYMBOL)
        assert self._slot, "the module has no parallel regions"
        cell = ctypes.c_void_p.from_address(self._slot)
        self._saved = cell.value
        worker_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

        def launch(worker, data, n, flags):
            self.counts.append(n)
            ctypes.cast(worker, worker_type)(data)
        self._launch = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                        ctypes.c_uint32)(launch)
        cell.value = ctypes.cast(self._launch, ctypes.c_void_p).value

    def restore(self):
        ctypes.c_void_p.from_address(self._slot).value = self._saved


@pytest.mark.parametrize("make, shape", [(_mlp, (256,)), (_convnet, (16, 16, 3))])
def test_cost_model_keeps_small_calls_on_one_thread_and_splits_large_ones(make, shape):
    assert LAUNCH_TYPE is not None
    graph = make(f"cost_model_{make.__name__}")
    fn = compile_graph(graph)
    rec = _RecordingLauncher(fn)
    try:
        rng = np.random.default_rng(1)
        small = rng.standard_normal((1, *shape)).astype(np.float32)
        large = rng.standard_normal((512, *shape)).astype(np.float32)
        want_small, want_large = fn([small], nthreads=1)[0], fn([large], nthreads=1)[0]
        assert rec.counts == []                      # one thread asked: no region launches
        got_small = fn([small], nthreads=4)[0]
        assert rec.counts == []                      # batch 1: no kernel's work is worth a second thread
        got_large = fn([large], nthreads=4)[0]
        assert rec.counts and max(rec.counts) == 4   # batch 512: the big kernels take every thread offered
        np.testing.assert_array_equal(got_small, want_small)
        np.testing.assert_array_equal(got_large, want_large)   # tasks split rows/columns: same sums
    finally:
        rec.restore()



def test_batch1_dense_bound_by_its_weights_splits_them():
    """A batch-1 dense layer streams its weights (784x512: 1.6 MB, ~19 us of one core for 0.8 Mflop):
    the cost model counts that reading, so the GEMV takes a second thread, and the tiny 512 -> 10
    layer after it stays on the calling thread."""
    fn = compile_graph(_mlp("cost_model_gemv", din=784, dh=512))
    rec = _RecordingLauncher(fn)
    try:
        x = np.random.default_rng(4).standard_normal((1, 784)).astype(np.float32)
        want = fn([x], nthreads=1)[0]
        got = fn([x], nthreads=2)[0]
        assert rec.counts == [2]                     # one region: the 784x512 GEMV; not the 512x10 one
        np.testing.assert_array_equal(got, want)     # N split in NR panels: the same sums
    finally:
        rec.restore()


def test_small_staged_calls_with_the_default_offer_are_tuned(four_cores):
    """A batch-1 call small enough to be staged (ir/call_plan.py) may still split a GEMV over the
    threads: with the default offer it runs with the count the tuner allows (a trial starts, and
    between trials one thread costs no budget), never unbudgeted with every core."""
    fn = compile_graph(_mlp("tuned_staged", din=784, dh=512))
    plan = fn.plan()
    x = np.random.default_rng(5).standard_normal((1, 784)).astype(np.float32)
    want = fn([x], nthreads=1)[0]
    for _ in range(1 + 2 * TRIALS + 3):
        np.testing.assert_array_equal(plan([x])[0], want)
    assert fn.tuner.chosen(1) in (1, 4)             # a trial ran on the staged path
    assert tb.BUDGET.busy == 0
    tb.set_num_threads(2)                            # a count the user chose is not tuned
    assert fn.plan()([x]) is not None and tb.tunable_offer() is None

# -- the real pool ------------------------------------------------------------------------------------
def test_threaded_results_equal_one_thread_bitwise():
    for graph, shape in ((_mlp("bitwise_mlp"), (256,)), (_convnet("bitwise_convnet"), (16, 16, 3))):
        fn = compile_graph(graph)
        x = np.random.default_rng(2).standard_normal((300, *shape)).astype(np.float32)
        np.testing.assert_array_equal(fn([x], nthreads=2)[0], fn([x], nthreads=1)[0])
        np.testing.assert_array_equal(fn([x])[0], fn([x], nthreads=1)[0])   # the default offer


_IDLE_CHECK = """
import time, numpy as np
from kcompile.compiler.jit import compile_graph
from tests_graph import graph
fn = compile_graph(graph)
x = np.random.default_rng(3).standard_normal((512, 256)).astype(np.float32)
for _ in range(5):
    fn([x], nthreads=2)
time.sleep(0.05)   # the pool's spin (ir/native_pool.py: ~0.75 ms on a Zen 4, more where pause is slower) ends within this
cpu0, wall0 = time.process_time(), time.perf_counter()
time.sleep(0.4)
print(time.process_time() - cpu0, time.perf_counter() - wall0)
"""


def test_idle_workers_do_not_spin(tmp_path):
    """After a threaded call the pool's workers must sleep: the process burns (almost) no CPU while idle.
    (With OMP_WAIT_POLICY=active or GOMP_SPINCOUNT=infinite they would spin.) A fresh process, so
    that no other library's threads (BLAS, onnxruntime) are winding down."""
    import pickle
    import subprocess
    import sys
    graph = _mlp("idle_mlp")
    (tmp_path / "graph.pkl").write_bytes(pickle.dumps(graph))
    (tmp_path / "tests_graph.py").write_text(
        f"import pickle\ngraph = pickle.loads(open({str(tmp_path / 'graph.pkl')!r}, 'rb').read())\n")
    out = subprocess.run([sys.executable, "-c", _IDLE_CHECK], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, check=True).stdout
    cpu, wall = map(float, out.split()[-2:])
    assert cpu < 0.1 * wall, f"the process used {cpu:.3f} s of CPU in {wall:.3f} s idle: workers spin"


def test_two_models_called_from_two_python_threads():
    graphs = [(_mlp("two_threads_mlp"), (256,)), (_convnet("two_threads_convnet"), (16, 16, 3))]
    fns = [compile_graph(g) for g, _ in graphs]
    inputs = [[np.random.default_rng(10 * k + i).standard_normal((64 + 37 * i, *shape)).astype(np.float32)
               for i in range(6)] for k, (_, shape) in enumerate(graphs)]
    want = [[fn([x], nthreads=1)[0] for x in xs] for fn, xs in zip(fns, inputs)]
    barrier = threading.Barrier(2)

    def work(k):   # each model's calls, three times over, both threads starting at once
        barrier.wait()
        return [fns[k]([x])[0] for x in inputs[k] for _ in range(3)][::3]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(work, range(2)))   # (an exception in a thread is raised here)
    for k in range(2):
        for g, w in zip(got[k], want[k]):
            np.testing.assert_array_equal(g, w)
    assert tb.BUDGET.busy == 0   # every call gave its threads back


# -- the tuner (fit's steps) ----------------------------------------------------------------------------
def _drive(tuner, batch, seconds_for):
    """One call as BoundCall makes it; returns the limit used."""
    limit = tuner.limit(batch)
    tuner.record(batch, limit, seconds_for(limit))
    return limit


def test_tuner_keeps_the_threads_that_help(four_cores):
    tuner = ThreadTuner()
    for _ in range(1 + 2 * TRIALS):
        _drive(tuner, 128, lambda n: 1.0 / n)        # 4 threads: 4x faster
    assert tuner.chosen(128) == 4 and tuner.limit(128) == 4
    slow = ThreadTuner()                             # a loaded machine: more threads are slower
    for _ in range(1 + 2 * TRIALS):
        _drive(slow, 128, lambda n: 1.0 + 0.5 * (n > 1))
    assert slow.chosen(128) == 1
    assert slow.chosen(1) is None                    # per batch size
    # one thread won by a little (noise, maybe): the next trial comes after RETUNE calls as usual
    assert {_drive(slow, 128, lambda n: 1.0) for _ in range(RETUNE - 1 - 2 * TRIALS)} == {1}
    for _ in range(1 + 2 * TRIALS):                  # the load goes away: that trial sees it
        _drive(slow, 128, lambda n: 1.0 / n)
    assert slow.chosen(128) == 4
    assert {_drive(slow, 128, lambda n: 1.0 / n) for _ in range(RETUNE - 1 - 2 * TRIALS)} == {4}
    for _ in range(1 + 2 * TRIALS):                  # and after RETUNE calls again
        _drive(slow, 128, lambda n: 1.0 + 0.5 * (n > 1))
    assert slow.chosen(128) == 1


def test_tuner_backs_off_while_one_thread_keeps_winning(four_cores):
    """On a loaded machine each trial's threaded calls are far slower (over LOST_BY times one
    thread's): trials come ever rarer, up to a bound."""
    tuner, trials_at = ThreadTuner(), []
    for call in range(40 * RETUNE):
        limit = _drive(tuner, 1, lambda n: 1.0 + 100.0 * (n > 1))
        if limit > 1 and call:                       # (call 0 warms up with the offer: nothing chosen yet)
            trials_at.append(call)
    starts = [c for i, c in enumerate(trials_at) if i == 0 or c - trials_at[i - 1] > 2 * TRIALS]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert gaps[:4] == [2 * RETUNE, 4 * RETUNE, 8 * RETUNE, 16 * RETUNE]
    assert max(gaps) == MAX_BACKOFF * RETUNE


def test_tuner_leaves_a_chosen_count_alone(four_cores, monkeypatch):
    monkeypatch.setenv(tb.ENV_VAR, "2")
    assert ThreadTuner().limit(128) is None
    monkeypatch.delenv(tb.ENV_VAR)
    tb.set_num_threads(1)
    assert ThreadTuner().limit(128) is None


def test_training_steps_with_two_threads_equal_one_thread_bitwise():
    """Every kernel of a convnet train step splits work without changing any sum's order (the filter
    gradient's partial sums depend on the work, not on the threads), so the weights match bitwise."""
    import kcompile as kc
    L = kc.layers
    rng = np.random.default_rng(4)
    x = rng.standard_normal((256, 12, 12, 1)).astype(np.float32)   # one channel: the direct filter gradient
    y = rng.integers(0, 4, 256)
    weights = []
    for threads in (1, 2):
        kc.set_num_threads(threads)
        try:
            model = kc.Sequential([L.Input(shape=(12, 12, 1)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(2),
                                   L.Conv2D(16, 3, strides=2, activation="relu"), L.Flatten(),
                                   L.Dense(4, activation="softmax")])
            if weights:
                model.set_weights(weights[0][0])
            model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            start = model.get_weights()
            model.fit(x, y, batch_size=256, epochs=3, shuffle=False, verbose=0)
            weights.append((start, model.get_weights()))
        finally:
            kc.set_num_threads(None)
    for a, b in zip(weights[0][1], weights[1][1]):
        np.testing.assert_array_equal(a, b)
