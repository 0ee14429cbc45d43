"""The machine's f32 FMA peak, measured: clock from a dependent-add chain, FMA rate from a throughput loop.

  clock:   a chain of dependent 64-bit integer adds (one cycle of latency each on every x86 core of
           the last 15 years), inline assembly so LLVM cannot fold it: adds per second = cycles per second.
  FMA rate: 16 independent vfmadd231ps chains (more than latency x units on any current core) on the
           widest vectors the target uses (zmm with AVX-512, else ymm): FLOP/s of one core.
  units:   FMA rate / (clock x lanes x 2), rounded: vector FMA instructions retired per cycle.

peak(threads) = threads x units x lanes x 2 x clock. Each figure is the best of many short samples
(descheduling only ever adds time). The bench prints how it found each number.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from kcompile.compiler.target import host_target

ADDS_PER_ITER = 200
FMAS_PER_ITER = 16 * 8


@dataclass
class Peak:
    clock_hz: float
    fma_flops_per_core: float    # measured
    lanes: int                   # f32 lanes per vector
    units: int                   # FMA instructions per cycle (inferred)
    vector: str

    def flops(self, threads: int) -> float:
        """cores used x FMA units x vector width x 2 x clock."""
        return threads * self.units * self.lanes * 2 * self.clock_hz

    def describe(self) -> str:
        return (f"clock {self.clock_hz / 1e9:.2f} GHz (dependent-add chain), {self.vector} f32 FMA "
                f"{self.fma_flops_per_core / 1e9:.0f} GFLOP/s per core measured -> {self.units} FMA unit(s) x "
                f"{self.lanes} lanes x 2 x clock = {self.flops(1) / 1e9:.0f} GFLOP/s per core")


def _module(vector: str, lanes: int) -> str:
    i64 = ir.IntType(64)
    m = ir.Module("fma_peak")
    for name, body, regs in (("chain", "addq $$1, $0\n" * ADDS_PER_ITER, None), ("fma", None, 16)):
        fn = ir.Function(m, ir.FunctionType(i64, [i64]), name)
        entry, loop, done = (fn.append_basic_block(n) for n in ("entry", "loop", "done"))
        b = ir.IRBuilder(entry)
        b.branch(loop)
        b.position_at_end(loop)
        k = b.phi(i64)
        acc = b.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), entry)
        acc.add_incoming(ir.Constant(i64, 0), entry)
        if body is not None:
            out = b.asm(ir.FunctionType(i64, [i64]), body, "=r,0", [acc], side_effect=True)
        else:
            reg = "zmm" if vector == "zmm" else "ymm"
            text = "".join(f"vfmadd231ps %{reg}{16 if reg == 'zmm' else 14}, %{reg}{17 if reg == 'zmm' else 15}, "
                           f"%{reg}{r % (16 if reg == 'zmm' else 14)}\n" for r in range(FMAS_PER_ITER))
            clobbers = ",".join(f"~{{{reg}{r}}}" for r in range(18 if reg == "zmm" else 16))
            b.asm(ir.FunctionType(ir.VoidType(), []), text, clobbers, [], side_effect=True)
            out = b.add(acc, ir.Constant(i64, 1))
        k2 = b.add(k, ir.Constant(i64, 1))
        k.add_incoming(k2, loop)
        acc.add_incoming(out, loop)
        b.cbranch(b.icmp_signed("<", k2, fn.args[0]), loop, done)
        b.position_at_end(done)
        b.ret(out)
    return str(m)


def _best_rate(fn, per_iter: int, sample_s: float = 2e-3, samples: int = 60) -> float:
    """Best operations per second over short samples."""
    n = 1000
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt > sample_s / 2:
            break
        n *= 2
    best = float("inf")
    for _ in range(samples):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n * per_iter / best


def measure() -> Peak:
    target = host_target()
    if not target.is_x86:
        raise RuntimeError("the FMA calibration is written for x86 (inline assembly)")
    vector = "zmm" if target.has("avx512f") else "ymm"
    lanes = 16 if vector == "zmm" else 8
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    tm = target.new_machine(2)
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(_module(vector, lanes)), tm)
    engine.finalize_object()
    proto = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)
    chain = proto(engine.get_function_address("chain"))
    fma = proto(engine.get_function_address("fma"))
    clock = _best_rate(chain, ADDS_PER_ITER)
    fma_rate = _best_rate(fma, FMAS_PER_ITER) * lanes * 2
    units = max(1, round(fma_rate / (clock * lanes * 2)))
    measure.engine = engine   # keep the code alive with the functions
    return Peak(clock, fma_rate, lanes, units, vector)


if __name__ == "__main__":
    print(measure().describe())
