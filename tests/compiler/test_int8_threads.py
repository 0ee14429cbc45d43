"""Parallel launches of an int8 model: no more than its float32 version makes (on a busy machine every
launch waits for a core, so a cheap quantize loop must not wake a thread), counted by wrapping the
thread launcher the JIT binds (compiler/threads.py)."""
import collections
import ctypes

import numpy as np
import pytest

import kcompile as kc
import kcompile.compiler.threads as threads
from kcompile.compiler.jit import compile_graph

LAUNCH = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)


@pytest.fixture
def launches(monkeypatch):
    """A Counter of (worker, threads) per launch, for code compiled inside the test."""
    address = threads.parallel_launch_address()
    if address is None:
        pytest.skip("no thread pool: every call runs on the calling thread")
    real, counts = LAUNCH(address), collections.Counter()

    def launch(fn, data, n, flags):
        counts[fn, n] += 1
        real(fn, data, n, flags)

    hook = LAUNCH(launch)
    monkeypatch.setattr(threads, "parallel_launch_address", lambda: ctypes.cast(hook, ctypes.c_void_p).value)
    yield counts


def test_int8_mlp_launches_no_more_threads_than_float(launches):
    L = kc.layers
    kc.utils.set_random_seed(0)
    model = kc.Sequential([kc.Input((784,)), L.Dense(512, activation="relu"), L.Dense(10, activation="softmax")])
    x = np.random.default_rng(0).random((64, 784)).astype(np.float32)
    q = kc.quantization.quantize(model, calibration_data=x[:32])
    per_call = {}
    for name, m in (("float32", model), ("int8", q)):
        f = compile_graph(m.forward_graph())
        launches.clear()
        f([x], nthreads=2)
        per_call[name] = sum(launches.values())
    assert per_call["float32"] >= 1                     # the 64 x 784 x 512 GEMM is worth a second thread
    assert per_call["int8"] <= per_call["float32"], per_call
