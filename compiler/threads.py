"""Parallel regions in generated code, run on kcompile's native thread pool (ir/native_pool.py), or
libgomp's where that pool cannot be built.

Protocol (shared by the JIT, the AOT runtime and C callers):
  * A module that uses threads defines the global `kc_parallel_launch` (a function pointer with
    GOMP_parallel's signature: void (*)(void (*fn)(void *), void *data, unsigned n, unsigned flags)),
    initialized to null.  The runtime that loads the code stores the pool's launch function there
    (`bind_thread_launcher` for the in-process JIT; ctypes `c_void_p.in_dll(lib, LAUNCH_SYMBOL)`
    for a shared library; a C caller may store GOMP_parallel).  Generated code names no threading
    library, so it loads anywhere and runs single-threaded where the pointer was never set.
  * A region is given the number of threads as a run-time value; with 1 thread, or with no
    launcher bound, the worker runs directly on the calling thread and no threading library is
    touched.
  * Work is split into `ntasks` tasks taken dynamically from an atomic counter, so the result does
    not depend on how many threads the pool actually delivers; the native pool relies on it (its
    caller never waits for a worker that has not joined).
  * A kernel asks for at most one thread per `grain` units of its estimated work
    (`effective_threads`): waking a pool thread costs microseconds, and far more when the machine
    is oversubscribed, so small calls (batch 1) stay on the calling thread.
  * Workers copy the caller's MXCSR (x86), so flush-to-zero settings are the same on every thread.
  * Threads are not pinned: several processes each pinning "their" first cores would pile onto
    the same ones. Where the other cores are busy, a worker that the scheduler does not run simply
    takes no task (native pool); with libgomp the caller waited for it at the region's end.
"""
from __future__ import annotations

import ctypes
import platform

from llvmlite import ir

from ..ir import native_pool
from .codelib import LLVM_LOCK
from .loops import I8P, I32, I64, function_pointer_global, i64, imax, imin

LAUNCH_SYMBOL = "kc_parallel_launch"
WORKER_TYPE = ir.FunctionType(ir.VoidType(), [I8P])
LAUNCH_TYPE = ir.FunctionType(ir.VoidType(), [WORKER_TYPE.as_pointer(), I8P, I32, I32])
_HEADER = [I64, I64, I32]  # next task, task count, caller's MXCSR


def launcher_global(module: ir.Module) -> ir.GlobalVariable:
    """The module's `kc_parallel_launch` pointer (created null on first use)."""
    return function_pointer_global(module, LAUNCH_SYMBOL, LAUNCH_TYPE)


def _copies_fp_env(module: ir.Module) -> bool:
    """MXCSR exists on x86 only: the module's target triple decides, else the compiling machine."""
    triple = module.triple if module.triple and module.triple != "unknown-unknown-unknown" else platform.machine()
    return triple.lower().startswith(("x86_64", "amd64", "i686", "i386", "x86"))


class ParallelRegion:
    """One parallel loop over tasks: `body(builder, task, fields)` is emitted in a worker function.

    `field_types` are the LLVM types of the values the body needs from the caller (pointers, sizes);
    `run(builder, nthreads, ntasks, values)` emits the launch at the call site.
    """

    def __init__(self, module: ir.Module, name: str, field_types: list, body):
        self.module = module
        self.struct = ir.LiteralStructType(_HEADER + list(field_types))
        self.worker = ir.Function(module, WORKER_TYPE, name=name)
        self.worker.linkage = "internal"
        # called directly (one thread) and through the launcher: inlining the direct call would only
        # compile the body twice (a call per parallel loop costs nanoseconds)
        self.worker.attributes.add("noinline")
        self._emit_worker(body, len(field_types))

    def _emit_worker(self, body, nfields):
        b = ir.IRBuilder(self.worker.append_basic_block("entry"))
        cl = b.bitcast(self.worker.args[0], self.struct.as_pointer())
        fields = [b.load(self._field(b, cl, 3 + i)) for i in range(nfields)]
        saved = self._enter_fp_env(b, cl)
        ntasks = b.load(self._field(b, cl, 1))
        loop = b.append_basic_block("task")
        done = b.append_basic_block("done")
        b.branch(loop)
        b.position_at_end(loop)
        task = b.atomic_rmw("add", self._field(b, cl, 0), i64(1), "monotonic")
        work = b.append_basic_block("work")
        b.cbranch(b.icmp_signed("<", task, ntasks), work, done)
        b.position_at_end(work)
        body(b, task, fields)
        b.branch(loop)
        b.position_at_end(done)
        self._leave_fp_env(b, saved)
        b.ret_void()

    @staticmethod
    def _field(b, cl, i):
        return b.gep(cl, [ir.Constant(I32, 0), ir.Constant(I32, i)], inbounds=True)

    def _mxcsr(self, name):
        return self.module.globals.get(name) or ir.Function(
            self.module, ir.FunctionType(ir.VoidType(), [I8P]), name=name)

    def _enter_fp_env(self, b, cl):
        if not _copies_fp_env(self.module):
            return None
        saved = b.alloca(I32)
        b.call(self._mxcsr("llvm.x86.sse.stmxcsr"), [b.bitcast(saved, I8P)])
        b.call(self._mxcsr("llvm.x86.sse.ldmxcsr"), [b.bitcast(self._field(b, cl, 2), I8P)])
        return saved

    def _leave_fp_env(self, b, saved):
        if saved is not None:
            b.call(self._mxcsr("llvm.x86.sse.ldmxcsr"), [b.bitcast(saved, I8P)])

    def run(self, b: ir.IRBuilder, nthreads, ntasks, values: list):
        """Emit: fill the closure, then launch min(nthreads, ntasks) workers (or call one inline)."""
        cl = b.alloca(self.struct)
        b.store(i64(0), self._field(b, cl, 0))
        b.store(ntasks, self._field(b, cl, 1))
        if _copies_fp_env(self.module):
            b.call(self._mxcsr("llvm.x86.sse.stmxcsr"), [b.bitcast(self._field(b, cl, 2), I8P)])
        for i, v in enumerate(values):
            b.store(v, self._field(b, cl, 3 + i))
        data = b.bitcast(cl, I8P)
        n = imin(b, nthreads, ntasks)
        launch = b.load(launcher_global(self.module))
        threaded = b.and_(b.icmp_signed(">", n, i64(1)), b.icmp_unsigned("!=", launch, launch.type(None)))
        with b.if_else(threaded) as (then, otherwise):
            with then:
                b.call(launch, [self.worker, data, b.trunc(n, I32), ir.Constant(I32, 0)])
            with otherwise:
                b.call(self.worker, [data])


def effective_threads(b: ir.IRBuilder, nthreads, work, grain: int):
    """min(nthreads, work / grain), at least 1: threads worth waking for this much work."""
    return imax(b, imin(b, nthreads, b.sdiv(work, i64(grain))), 1)


def parallel_launch_address() -> int | None:
    """The launcher generated code calls: the native pool (ir/native_pool.py), else libgomp's
    GOMP_parallel, else None (single-threaded). The pool is built with LLVM: under LLVM_LOCK."""
    with LLVM_LOCK:
        return native_pool.parallel_launch_address()


def bind_thread_launcher(global_address) -> bool:
    """Point a loaded module's `kc_parallel_launch` at the thread pool; False if single-threaded only.

    `global_address(name)` returns the address of a global in the loaded code, or 0 if absent.
    """
    slot = global_address(LAUNCH_SYMBOL)
    launch = parallel_launch_address()
    if not slot or launch is None:
        return False
    ctypes.c_void_p.from_address(slot).value = launch
    return True


def parallel_function(module: ir.Module, name: str, ptr_types: list, ntasks, body, work=None,
                      grain: int = 1) -> ir.Function:
    """Get or emit `void name(ptrs..., i64 batch, i64 nthreads)` running body over ntasks(b, batch) tasks.

    body(builder, task, ptrs, batch) emits one task's work inside the worker; work(b, batch), if
    given, estimates the call's work in the units of `grain` (see effective_threads).
    """
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), list(ptr_types) + [I64, I64]), name=name)
    fn.linkage = "internal"
    nptr = len(ptr_types)
    region = ParallelRegion(module, f"{name}.worker", list(ptr_types) + [I64],
                            lambda b, task, f: body(b, task, f[:nptr], f[nptr]))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    batch, nthreads = fn.args[nptr], fn.args[nptr + 1]
    if work is not None:
        nthreads = effective_threads(b, nthreads, work(b, batch), grain)
    region.run(b, nthreads, ntasks(b, batch), list(fn.args[:nptr]) + [batch])
    b.ret_void()
    return fn
