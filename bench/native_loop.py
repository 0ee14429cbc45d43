"""Time a packed native entry point (`<symbol>_packed(const int64_t *args)`) from native code.

A small llvmlite function calls the entry n times in a loop, so the time per call is the entry's
own: no Python, no ctypes. The call-path benchmark subtracts it from a Python call's median to get
that path's overhead. Bench-only helper (llvmlite is a compiler dependency anyway).
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
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
    mod = llvm.parse_assembly(str(module))
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    loop = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("kc_bench_loop"))
    return engine, loop


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
