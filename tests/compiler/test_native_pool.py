"""ir/native_pool.py: the thread pool generated code launches its regions on.

Each test region records, per task, the kernel thread id that ran it (gettid) after a short busy
wait, so a test can check that every task ran exactly once and which threads took part. The pool's
promises: tasks on more than one thread when asked; a launch that finds the pool busy runs its
region on its own thread at once (it never waits for the other launch); a forked child gets a pool
of its own; concurrent launches from several threads all complete correctly."""
import ctypes
import os
import platform
import threading
import time

import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.standalone import JitModule
from kcompile.compiler.loops import I64, for_range, gep, i64
from kcompile.compiler.threads import parallel_function
from kcompile.ir import native_pool

pytestmark = pytest.mark.skipif(not native_pool.available() or platform.machine() != "x86_64",
                                reason="the native pool (and gettid's syscall number here) is for Linux on x86-64")
SYS_GETTID = 186


def region_kernel(spin: int):
    """`void f(i64* tids, i64 ntasks, i64 nthreads)`: task t busy-waits `spin` rounds, then stores gettid()."""
    mod = ir.Module("pool_region")
    syscall = ir.Function(mod, ir.FunctionType(I64, [I64], var_arg=True), "syscall")

    def body(b, task, ptrs, batch):
        pause = ir.InlineAsm(ir.FunctionType(ir.VoidType(), []), "pause", "", side_effect=True)
        with for_range(b, 0, spin, 1, "spin"):
            b.call(pause, [])
        b.store(b.call(syscall, [i64(SYS_GETTID)]), gep(b, ptrs[0], task))
    fn = parallel_function(mod, "region", [I64.as_pointer()], lambda b, batch: batch, body)
    fn.linkage = ""
    return mod


@pytest.fixture(scope="module")
def region():
    jit = JitModule(region_kernel(spin=20000), opt_level=0)
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(jit.address("region"))

    def run(ntasks, nthreads):
        tids = np.zeros(ntasks, np.int64)
        f(tids.ctypes.data, ntasks, nthreads)   # ctypes releases the GIL for the call
        return tids
    yield run
    del jit


def test_every_task_runs_once_and_helpers_take_part(region):
    seen = set()
    for _ in range(50):
        tids = region(64, 2)
        assert (tids != 0).all()
        seen |= set(tids.tolist())
        if len(seen) > 1:
            break
    assert len(seen) > 1, "no task ever ran on a pool thread"
    assert native_pool.pool_counters()["workers"] >= 1


def test_one_thread_runs_on_the_caller(region):
    tids = region(16, 1)
    assert set(tids.tolist()) == {threading.get_native_id()}


def test_a_launch_that_finds_the_pool_busy_runs_alone_at_once(region):
    """A long region holds the pool; a second launch from another thread runs on that thread and
    returns before the first is done."""
    long_done = threading.Event()

    def long_call():
        region(4000, 2)
        long_done.set()
    t = threading.Thread(target=long_call)
    t.start()
    deadline = time.time() + 5
    while native_pool.pool_counters()["lock"] == 0 and time.time() < deadline:
        time.sleep(0.0005)
    assert native_pool.pool_counters()["lock"] == os.getpid(), "the long region never took the pool"
    tids = region(8, 2)
    finished_first = long_done.is_set()
    t.join()
    assert set(tids.tolist()) == {threading.get_native_id()}
    assert not finished_first


def test_concurrent_launches_from_several_threads(region):
    results, errors = {}, []

    def caller(k):
        try:
            for _ in range(20):
                tids = region(33, 2)
                assert (tids != 0).all()
            results[k] = True
        except AssertionError as e:   # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4


@pytest.mark.parametrize("in_flight", [False, True])
def test_a_forked_child_gets_a_pool_of_its_own(region, in_flight):
    """in_flight: another thread's launch holds the pool when the process forks; the child takes the
    lock over (the launch it records belongs to a thread the child does not have)."""
    region(64, 2)                       # the parent's pool has its workers
    busy = threading.Thread(target=region, args=(4000, 2)) if in_flight else None
    if busy is not None:
        busy.start()
        deadline = time.time() + 5
        while native_pool.pool_counters()["lock"] == 0 and time.time() < deadline:
            time.sleep(0.0005)
        assert native_pool.pool_counters()["lock"] == os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                        # child: a launch resets the pool to this process and runs
        ok = 0
        try:
            seen = set()
            for _ in range(50):
                tids = region(64, 2)
                seen |= set(tids.tolist())
                if (tids != 0).all() and len(seen) > 1:
                    break
            counters = native_pool.pool_counters()
            ok = int((tids != 0).all() and len(seen) > 1 and counters["pid"] == os.getpid())
        finally:
            os.write(write, bytes([ok]))
            os._exit(0)
    os.close(write)
    status = os.read(read, 1)
    os.waitpid(pid, 0)
    if busy is not None:
        busy.join()
    assert status == b"\x01"


@pytest.mark.parametrize("env, rounds", [
    ({}, native_pool.SPIN_DEFAULT), ({"GOMP_SPINCOUNT": "1000"}, 1000), ({"GOMP_SPINCOUNT": "infinite"}, 2 ** 31 - 1),
    ({"OMP_WAIT_POLICY": "passive"}, 0), ({"OMP_WAIT_POLICY": "active"}, 2 ** 31 - 1),
    ({"GOMP_SPINCOUNT": "junk"}, native_pool.SPIN_DEFAULT)])
def test_spin_rounds_follow_the_openmp_settings(monkeypatch, env, rounds):
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert native_pool.spin_rounds() == rounds


def test_gomp_can_be_chosen(monkeypatch):
    monkeypatch.setenv("KCOMPILE_THREAD_POOL", "gomp")
    assert not native_pool.available()


def test_without_llvmlite_the_runtime_falls_back_to_libgomp():
    """A deployed artifact needs the runtime and numpy only: with llvmlite missing the pool is not
    offered and the launcher is libgomp's (or none)."""
    import subprocess
    import sys
    code = """
import sys
class Block:
    def find_spec(self, name, path, target=None):
        if name == "llvmlite" or name.startswith("llvmlite."):
            raise ImportError("blocked for the test")
sys.meta_path.insert(0, Block())
from kcompile.ir import gomp_pool, native_pool
assert not native_pool.available()
assert native_pool.parallel_launch_address() == gomp_pool.gomp_parallel_address()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr
