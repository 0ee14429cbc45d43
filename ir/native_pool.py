"""A thread pool in native code whose caller never waits for a worker that has not started.

Generated code launches its parallel regions through `kc_parallel_launch`, a function pointer with
GOMP_parallel's signature (compiler/threads.py), and every region takes its tasks from a shared
counter, so it is correct on however many threads actually run it. libgomp's GOMP_parallel still
joins every thread of the team: a caller that had taken every task itself waited for a worker the
scheduler was not running, and with a busy-loop process on the other core of this project's 2-vCPU
machine the MNIST MLP on 2 threads took 12-62x one thread's time at batch 1 and 8, its 90th
percentile 2.7 ms at batch 64 against 0.5 ms (bench/bench_thread_pool.py). onnxruntime's pool
revokes the work items no worker has started; this pool does the same with one atomic word:

  state = generation << 32 | closed << 31 | joined

The caller publishes (fn, data), opens the generation, wakes sleeping workers and runs fn itself;
when fn returns every task is taken, so it closes the generation and waits only for the workers
that joined it (they are finishing tasks they took). A worker joins with a compare-and-swap that
fails once the generation is closed or has as many helpers as the caller asked for; then runs fn.

Workers spin for `spin` rounds of `pause` after a region (GOMP_SPINCOUNT's meaning; SPIN_DEFAULT
below says why 100000), then sleep on a futex. One launch runs at a time: a launch
that finds the pool busy (another Python thread's call, or a region inside a region) runs its
region on its own thread, which the shared task counter makes correct. A forked child finds the
parent's workers gone (the pool records its process id): it resets the pool and creates its own.

Built once per process with llvmlite (this module lives in ir because both the JIT and the
artifact runtime bind it). Where it cannot be built (not Linux on x86-64 or AArch64), callers fall
back to libgomp (gomp_pool.py). KCOMPILE_THREAD_POOL=gomp selects libgomp.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading

from . import gomp_pool

try:   # a deployed artifact needs the runtime and numpy only: without llvmlite, libgomp's pool
    from llvmlite import ir
except ImportError:  # pragma: no cover - llvmlite is a dependency of the package
    ir = None
else:
    I8P = ir.IntType(8).as_pointer()
    I32, I64, I1 = ir.IntType(32), ir.IntType(64), ir.IntType(1)
    WORKER_TYPE = ir.FunctionType(ir.VoidType(), [I8P])
    LAUNCH_TYPE = ir.FunctionType(ir.VoidType(), [WORKER_TYPE.as_pointer(), I8P, I32, I32])
CLOSED = 1 << 31
JOINED = CLOSED - 1
MAX_HELPERS = 255              # threads the pool creates at most; a wider region runs on fewer
# Rounds of `pause` an idle worker spins before it sleeps (~2.5 ms on a Zen 4). Longer than libgomp's
# 30000 (gomp_pool.py): there a spinning worker made the caller wait at the join under load, here it
# costs the caller nothing. With other runtimes' pools in the process (bench_models: onnxruntime,
# torch, XLA) a worker asleep when a burst of batch-1 calls began woke after the burst (~0.3 ms on
# this VM): the MNIST MLP at batch 1 on 2 threads read 1.17-1.39x onnxruntime's time at 30000 rounds,
# 1.23-1.29x at 0-2000, 0.59-0.73x at 100000 and 0.64-0.88x at 300000. With a busy-loop process on the
# other core (bench_thread_pool.py), 2 threads stay at 1 thread's time (0.98-1.03x) at 100000.
SPIN_DEFAULT = 100000
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}

_LOCK = threading.Lock()
_ENGINE = None                 # the pool's code lives as long as the process


def _c(ty, v):
    return ir.Constant(ty, v)


class _Module:
    """The pool's IR: its globals, libc's functions, and the launch and worker functions."""

    def __init__(self, sys_futex: int, x86: bool):
        m = self.m = ir.Module("kc_native_pool")
        self.sys_futex, self.x86 = sys_futex, x86

        def var(name, ty, init=0, align=None):
            g = ir.GlobalVariable(m, ty, name=name)
            g.initializer = _c(ty, init)
            if align:
                g.align = align
            return g
        self.seq = var("kc_pool_seq", I32, align=64)      # futex word: the latest generation
        self.state = var("kc_pool_state", I64, align=64)  # generation << 32 | closed << 31 | joined
        self.fn = ir.GlobalVariable(m, WORKER_TYPE.as_pointer(), name="kc_pool_fn")
        self.fn.initializer = _c(WORKER_TYPE.as_pointer(), None)
        self.data = var("kc_pool_data", I8P, None)
        self.wanted = var("kc_pool_wanted", I32)
        self.lock = var("kc_pool_lock", I32, align=64)
        self.workers = var("kc_pool_workers", I32)
        self.sleepers = var("kc_pool_sleepers", I32)
        self.pid = var("kc_pool_pid", I32)
        self.spin = var("kc_pool_spin", I32, SPIN_DEFAULT)
        start_type = ir.FunctionType(I8P, [I8P])
        self.getpid = ir.Function(m, ir.FunctionType(I32, []), "getpid")
        self.syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
        self.pthread_create = ir.Function(m, ir.FunctionType(I32, [I64.as_pointer(), I8P, start_type.as_pointer(), I8P]),
                                          "pthread_create")
        self.pthread_detach = ir.Function(m, ir.FunctionType(I32, [I64]), "pthread_detach")
        self.pause_fn = ir.Function(m, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause") if x86 else None
        self.worker = ir.Function(m, start_type, "kc_pool_worker")
        self.launch = ir.Function(m, LAUNCH_TYPE, "kc_pool_launch")
        self._emit_worker()
        self._emit_launch()

    # -- helpers ---------------------------------------------------------------------------------
    def _pause(self, b):
        if self.pause_fn is not None:
            b.call(self.pause_fn, [])

    def _futex(self, b, op: int, value):
        # syscall(2) reads every argument as a long: widen the 32-bit ones
        b.call(self.syscall, [_c(I64, self.sys_futex), self.seq, _c(I64, op), b.zext(value, I64), _c(I8P, None),
                              _c(I8P, None), _c(I64, 0)])

    @staticmethod
    def _load(b, ptr, order="acquire"):
        return b.load_atomic(ptr, order, ptr.type.pointee.width // 8)

    @staticmethod
    def _store(b, value, ptr, order="release"):
        b.store_atomic(value, ptr, order, value.type.width // 8)

    # -- the caller's side -----------------------------------------------------------------------
    def _emit_launch(self):
        fn = self.launch
        work, data, n, _flags = fn.args
        blocks = {name: fn.append_basic_block(name) for name in
                  ("entry", "alone", "lock", "inherited", "locked", "reset", "spawn", "create", "publish", "wake",
                   "run", "wait", "done")}
        b = ir.IRBuilder(blocks["entry"])
        tid = b.alloca(I64)                         # pthread_create's out-parameter (the thread is detached)
        b.cbranch(b.icmp_unsigned("<=", n, _c(I32, 1)), blocks["alone"], blocks["lock"])

        b.position_at_end(blocks["alone"])          # one thread, or the pool is busy: run it here
        b.call(work, [data])
        b.ret_void()

        # The lock word holds the locking process's id: a value of another process is a lock a
        # forked child inherited from a parent thread's launch in flight, free to take over.
        b.position_at_end(blocks["lock"])
        pid = b.call(self.getpid, [])
        first = b.cmpxchg(self.lock, _c(I32, 0), pid, "acquire", "monotonic")
        held = b.extract_value(first, 0)
        busy_here = b.icmp_unsigned("==", held, pid)
        b.cbranch(b.extract_value(first, 1), blocks["locked"], blocks["inherited"])
        b.position_at_end(blocks["inherited"])
        steal = fn.append_basic_block("steal")
        b.cbranch(busy_here, blocks["alone"], steal)   # another thread of this process holds it
        b.position_at_end(steal)
        taken = b.extract_value(b.cmpxchg(self.lock, held, pid, "acquire", "monotonic"), 1)
        b.cbranch(taken, blocks["locked"], blocks["alone"])

        b.position_at_end(blocks["locked"])         # a forked child's first launch: the parent's workers are gone
        owner = self._load(b, self.pid, "monotonic")
        b.cbranch(b.icmp_unsigned("==", owner, pid), blocks["spawn"], blocks["reset"])
        b.position_at_end(blocks["reset"])
        for g in (self.workers, self.sleepers):
            self._store(b, _c(I32, 0), g, "seq_cst")
        self._store(b, pid, self.pid, "seq_cst")
        b.branch(blocks["spawn"])

        b.position_at_end(blocks["spawn"])          # create the helpers this launch wants, once
        helpers = b.select(b.icmp_unsigned("<", b.sub(n, _c(I32, 1)), _c(I32, MAX_HELPERS)),
                           b.sub(n, _c(I32, 1)), _c(I32, MAX_HELPERS))
        have = self._load(b, self.workers, "monotonic")
        b.cbranch(b.icmp_unsigned("<", have, helpers), blocks["create"], blocks["publish"])
        b.position_at_end(blocks["create"])
        status = b.call(self.pthread_create, [tid, _c(I8P, None), self.worker, _c(I8P, None)])
        ok = b.icmp_signed("==", status, _c(I32, 0))
        with b.if_then(ok):
            b.call(self.pthread_detach, [b.load(tid)])
            self._store(b, b.add(have, _c(I32, 1)), self.workers, "monotonic")
        b.cbranch(ok, blocks["spawn"], blocks["publish"])   # a failed create: run on the threads there are

        b.position_at_end(blocks["publish"])
        gen = b.add(self._load(b, self.seq, "monotonic"), _c(I32, 1))
        b.store(work, self.fn)
        b.store(data, self.data)
        b.store(helpers, self.wanted)
        self._store(b, b.shl(b.zext(gen, I64), _c(I64, 32)), self.state)    # open, nobody joined
        self._store(b, gen, self.seq, "seq_cst")
        asleep = self._load(b, self.sleepers, "seq_cst")
        b.cbranch(b.icmp_unsigned("!=", asleep, _c(I32, 0)), blocks["wake"], blocks["run"])
        b.position_at_end(blocks["wake"])
        self._futex(b, FUTEX_WAKE_PRIVATE, helpers)
        b.branch(blocks["run"])

        b.position_at_end(blocks["run"])            # the caller works too; when fn returns every task is taken
        b.call(work, [data])
        b.atomic_rmw("or", self.state, _c(I64, CLOSED), "acq_rel")
        b.branch(blocks["wait"])
        b.position_at_end(blocks["wait"])           # ... by this thread or by workers that joined: wait for them only
        joined = b.and_(self._load(b, self.state), _c(I64, JOINED))
        busy = b.icmp_unsigned("!=", joined, _c(I64, 0))
        with b.if_then(busy):
            self._pause(b)
        b.cbranch(busy, blocks["wait"], blocks["done"])
        b.position_at_end(blocks["done"])
        self._store(b, _c(I32, 0), self.lock)
        b.ret_void()

    # -- a worker --------------------------------------------------------------------------------
    def _emit_worker(self):
        fn = self.worker
        blocks = {name: fn.append_basic_block(name) for name in
                  ("entry", "idle", "spin", "relax", "pause", "sleep", "join", "try", "cas", "run", "next")}
        b = ir.IRBuilder(blocks["entry"])
        first = self._load(b, self.seq)
        b.branch(blocks["idle"])

        b.position_at_end(blocks["idle"])           # the generation this worker saw last
        mine = b.phi(I32, "mine")
        mine.add_incoming(first, blocks["entry"])
        b.branch(blocks["spin"])
        b.position_at_end(blocks["spin"])
        rounds = b.phi(I32, "rounds")
        rounds.add_incoming(_c(I32, 0), blocks["idle"])
        now = self._load(b, self.seq)
        b.cbranch(b.icmp_unsigned("!=", now, mine), blocks["join"], blocks["relax"])
        b.position_at_end(blocks["relax"])
        spinning = b.icmp_unsigned("<", rounds, self._load(b, self.spin, "monotonic"))
        b.cbranch(spinning, blocks["pause"], blocks["sleep"])
        b.position_at_end(blocks["pause"])
        self._pause(b)
        rounds.add_incoming(b.add(rounds, _c(I32, 1)), blocks["pause"])
        b.branch(blocks["spin"])
        b.position_at_end(blocks["sleep"])          # returns at once if seq moved since the check above
        b.atomic_rmw("add", self.sleepers, _c(I32, 1), "seq_cst")
        self._futex(b, FUTEX_WAIT_PRIVATE, mine)
        b.atomic_rmw("sub", self.sleepers, _c(I32, 1), "seq_cst")
        rounds.add_incoming(rounds, blocks["sleep"])   # past the spin limit: check, then sleep again
        b.branch(blocks["spin"])

        b.position_at_end(blocks["join"])           # a new generation: join it unless closed or full
        first_state = self._load(b, self.state)
        wanted = b.zext(b.load(self.wanted), I64)
        b.branch(blocks["try"])
        b.position_at_end(blocks["try"])
        st = b.phi(I64, "state")
        st.add_incoming(first_state, blocks["join"])
        open_ = b.and_(b.icmp_unsigned("==", b.lshr(st, _c(I64, 32)), b.zext(now, I64)),
                       b.icmp_unsigned("==", b.and_(st, _c(I64, CLOSED)), _c(I64, 0)))
        room = b.icmp_unsigned("<", b.and_(st, _c(I64, JOINED)), wanted)
        b.cbranch(b.and_(open_, room), blocks["cas"], blocks["next"])
        b.position_at_end(blocks["cas"])
        swap = b.cmpxchg(self.state, st, b.add(st, _c(I64, 1)), "acq_rel", "acquire")
        st.add_incoming(b.extract_value(swap, 0), blocks["cas"])
        b.cbranch(b.extract_value(swap, 1), blocks["run"], blocks["try"])
        b.position_at_end(blocks["run"])            # fn and data stay put until this worker leaves
        b.call(b.load(self.fn), [b.load(self.data)])
        b.atomic_rmw("sub", self.state, _c(I64, 1), "release")
        b.branch(blocks["next"])
        b.position_at_end(blocks["next"])
        mine.add_incoming(now, blocks["next"])
        b.branch(blocks["idle"])


def spin_rounds() -> int:
    """GOMP_SPINCOUNT's value where the user set it (OMP_WAIT_POLICY=passive: 0), else SPIN_DEFAULT."""
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().lower()
    raw = "" if gomp_pool.spincount_is_ours else os.environ.get("GOMP_SPINCOUNT", "").strip().lower()
    if raw == "infinite" or policy == "active" and not raw:
        return 2 ** 31 - 1
    if policy == "passive" and not raw:
        return 0
    try:
        return max(0, min(int(raw), 2 ** 31 - 1)) if raw else SPIN_DEFAULT
    except ValueError:
        return SPIN_DEFAULT


def available() -> bool:
    return (ir is not None and sys.platform.startswith("linux") and platform.machine().lower() in SYS_FUTEX
            and os.environ.get("KCOMPILE_THREAD_POOL", "").strip().lower() != "gomp")


def launch_address() -> int | None:
    """Address of kc_pool_launch (GOMP_parallel's signature), built on first use; None where unavailable."""
    if not available():
        return None
    with _LOCK:   # one pool per process, whichever thread binds first
        if _ENGINE is None:
            _build()
        return _ENGINE.get_function_address("kc_pool_launch") or None


def _build() -> None:
    import llvmlite.binding as llvm
    global _ENGINE
    machine = platform.machine().lower()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = _Module(SYS_FUTEX[machine], machine in ("x86_64", "amd64"))
    parsed = llvm.parse_assembly(str(module.m))
    parsed.verify()
    # O0: 7 ms against 13 at O2 on a cold start's path; the code is a few atomics and a spin loop
    tm = llvm.Target.from_default_triple().create_target_machine(opt=0)
    engine = llvm.create_mcjit_compiler(parsed, tm)
    engine.finalize_object()
    # Never disposed, not even when the interpreter clears this module at exit: a worker may still
    # be spinning in this code then (workers are detached native threads).
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))
    ctypes.c_int32.from_address(engine.get_global_value_address("kc_pool_spin")).value = spin_rounds()
    _ENGINE = engine


def pool_counters() -> dict:
    """The pool's threads and state (tests and diagnostics): workers created, asleep, launch lock."""
    if launch_address() is None:
        return {}
    read = lambda name: ctypes.c_int32.from_address(_ENGINE.get_global_value_address(name)).value
    return {"workers": read("kc_pool_workers"), "sleepers": read("kc_pool_sleepers"), "lock": read("kc_pool_lock"),
            "pid": read("kc_pool_pid")}


def parallel_launch_address() -> int | None:
    """What `kc_parallel_launch` points at: this pool, else libgomp's GOMP_parallel, else None (one thread)."""
    return launch_address() or gomp_pool.gomp_parallel_address()
