"""Time a packed native entry point (`<symbol>_packed(const int64_t *args)`) from native code.

Two small llvmlite functions: `kc_bench_loop` calls the entry n times in a loop (the time per call
is the entry's own: no Python, no ctypes), and `kc_bench_timed` calls it once between two reads of
the time-stamp counter (llvm.readcyclecounter), so single native calls can be timed in between
Python calls, in the same cache and load conditions, without the ctypes call in the figure. The
counter's rate is calibrated against time.perf_counter. Bench-only helper (llvmlite is a compiler
dependency anyway).
"""
from __future__ import annotations

import ctypes
import statistics
import time

import llvmlite.binding as llvm
from llvmlite import ir

_ENGINE = None
_LOOP = None


def _compile():
    """void loop(int32 (*fn)(int64 *), int64 *args, int64 n): call fn(args) n times."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    entry_t = ir.FunctionType(i32, [i64.as_pointer()])
    module = ir.Module("native_loop")
    fn = ir.Function(module, ir.FunctionType(i32, [entry_t.as_pointer(), i64.as_pointer(), i64]), "kc_bench_loop")
    entry, body, done = fn.append_basic_block("entry"), fn.append_basic_block("body"), fn.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.branch(body)
    b.position_at_end(body)
    k = b.phi(i64)
    acc = b.phi(i32)
    status = b.call(fn.args[0], [fn.args[1]])
    acc2 = b.or_(acc, status)
    k2 = b.add(k, ir.Constant(i64, 1))
    k.add_incoming(ir.Constant(i64, 0), entry)
    k.add_incoming(k2, body)
    acc.add_incoming(ir.Constant(i32, 0), entry)
    acc.add_incoming(acc2, body)
    b.cbranch(b.icmp_signed("<", k2, fn.args[2]), body, done)
    b.position_at_end(done)
    b.ret(acc2)
    _timed_function(module, entry_t)
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
    mod = llvm.parse_assembly(str(module))
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    loop = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("kc_bench_loop"))
    global _TIMED, _TICKS
    _TIMED = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)(
        engine.get_function_address("kc_bench_timed"))
    _TICKS = ctypes.CFUNCTYPE(ctypes.c_int64)(engine.get_function_address("kc_bench_ticks"))
    return engine, loop


def _timed_function(module, entry_t):
    """int64 kc_bench_timed(fn, args): counter ticks of one fn(args) call (-1 on an error status);
    int64 kc_bench_ticks(): the counter."""
    i64 = ir.IntType(64)
    counter = ir.Function(module, ir.FunctionType(i64, []), "llvm.readcyclecounter")
    ticks = ir.Function(module, ir.FunctionType(i64, []), "kc_bench_ticks")
    b = ir.IRBuilder(ticks.append_basic_block())
    b.ret(b.call(counter, []))
    fn = ir.Function(module, ir.FunctionType(i64, [entry_t.as_pointer(), i64.as_pointer()]), "kc_bench_timed")
    b = ir.IRBuilder(fn.append_basic_block())
    t0 = b.call(counter, [])
    status = b.call(fn.args[0], [fn.args[1]])
    dt = b.sub(b.call(counter, []), t0)
    b.ret(b.select(b.icmp_signed("==", status, ir.Constant(status.type, 0)), dt, ir.Constant(i64, -1)))


_TIMED = _TICKS = None
_TICK_SECONDS = None


def tick_seconds() -> float:
    """Seconds per counter tick, from the counter and perf_counter over 50 ms (best of 3)."""
    global _ENGINE, _LOOP, _TICK_SECONDS
    if _LOOP is None:
        _ENGINE, _LOOP = _compile()
    if _TICK_SECONDS is None:
        rates = []
        for _ in range(3):
            t0, c0 = time.perf_counter(), _TICKS()
            while time.perf_counter() - t0 < 0.05:
                pass
            t1, c1 = time.perf_counter(), _TICKS()
            rates.append((t1 - t0) / (c1 - c0))
        _TICK_SECONDS = statistics.median(rates)
    return _TICK_SECONDS


def one_call_seconds(fn_address: int, args_address: int) -> float:
    """Seconds of one native call of fn(args), timed inside native code."""
    scale = tick_seconds()
    ticks = _TIMED(fn_address, args_address)
    if ticks < 0:
        raise RuntimeError("the entry point returned an error status")
    return ticks * scale


def loop_seconds(fn_address: int, args_address: int, n: int) -> float:
    """Seconds per call of one native loop of n calls (for samples interleaved with Python calls)."""
    global _ENGINE, _LOOP
    if _LOOP is None:
        _ENGINE, _LOOP = _compile()
    t0 = time.perf_counter()
    status = _LOOP(fn_address, args_address, n)
    dt = (time.perf_counter() - t0) / n
    if status:
        raise RuntimeError("the entry point returned an error status")
    return dt


def entry_seconds(fn_address: int, args_address: int, budget: float = 0.3, sample: float = 2e-4) -> float:
    """Median seconds per call of fn(args), over native loops of about `sample` seconds each.

    Short samples, because on a shared machine a long loop's mean includes the time the process
    was descheduled; the median of many short ones, like the Python calls' median, does not."""
    global _ENGINE, _LOOP
    if _LOOP is None:
        _ENGINE, _LOOP = _compile()
    t0 = time.perf_counter()
    if _LOOP(fn_address, args_address, 3):
        raise RuntimeError("the entry point returned an error status")
    once = max((time.perf_counter() - t0) / 3, 1e-7)
    n = max(1, int(sample / once))
    samples = []
    for _ in range(max(5, int(budget / (n * once)))):
        t0 = time.perf_counter()
        _LOOP(fn_address, args_address, n)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)
