"""Benchmark: int8 GEMM (matmul_integer kernel) GOPS vs the f32 GEMM, 1 thread, on each int8 path.

Run: python bench/bench_int8_kernels.py [--repeat 100] [--threads 1].  Prints medians and ratios; not a
test. Each path is compiled for its own CPU: the host's (AVX-512 VNNI where it has it) and x86-64-v3
(AVX2, no AVX-512) for both the int8 and the f32 kernel, so each ratio compares like with like.
A GEMM of M x K x N counts 2*M*K*N operations. "int8" is the kernel for a B that is a graph input:
it packs B on every call with M > MR (see compiler/kernels/int8_gemm.py) and reads it in place below,
both costs included; "prepacked" is the kernel for a weight parameter, whose packed copy
(passes/int8_prepack.py) is made once, as compiled models use it. Also timed: the fused requantize
epilogue (i32 bias + per-column multiplier + relu, int8 out) on the prepacked kernel.
"""
from __future__ import annotations

import argparse
import numpy as np
from llvmlite import ir

from kcompile.compiler.kernels.int8_calls import int8_matmul_function, tile_for
from kcompile.compiler.kernels.int8_isa import int8_isa
from kcompile.compiler.kernels.int8_microkernel import Requantize
from kcompile.compiler.kernels.matmul import matmul_function
from kcompile.compiler.kernels.standalone import JitModule, host_features
from kcompile.passes.int8_prepack import pack_weights

from bench_kernels import median_seconds   # bench/ is the script's directory
import os
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

SHAPES = [(64, 784, 512), (1, 784, 512)]
AVX2 = ("x86-64-v3", "+avx,+avx2,+fma,+f16c,+bmi2,-avx512f,-avx512bw,-avx512vnni,-avx512vl,-avx512dq")


def bound(jit: JitModule, fn_name: str, arrays, batch: int, nthreads: int):
    """A no-argument call of the kernel on these arrays: the function pointer and the array addresses
    are resolved once, so a timing is the kernel's, not ctypes' (which costs microseconds per call)."""
    import ctypes
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arrays)), ctypes.c_int64, ctypes.c_int64)
    fn, args = proto(jit.address(fn_name)), [a.ctypes.data for a in arrays] + [batch, nthreads]
    return lambda: fn(*args)


def build(cpu, features):
    mod, names = ir.Module("bench_int8"), {}
    for m, k, n in SHAPES:
        for kind, make in (("f32", lambda: matmul_function(mod, features, "f32", ("N", k), (k, n))),
                           ("i8", lambda: int8_matmul_function(mod, features, "u8", ("N", k), (k, n), True)),
                           ("i8 packed", lambda: int8_matmul_function(mod, features, "u8", ("N", k), (k, n), True,
                                                                      prepacked=True)),
                           ("i8+rq", lambda: int8_matmul_function(
                               mod, features, "u8", ("N", k), (k, n), True, Requantize("u8", True, True, True),
                               prepacked=True))):
            fn = make()
            fn.linkage = "external"
            names[kind, m, k, n] = fn.name
    return JitModule(mod, cpu=cpu, features=features), names


def run(label, cpu, features, repeat, threads):
    jm, names = build(cpu, features)
    rng = np.random.default_rng(0)
    print(f"{label} (int8 path: {int8_isa(features).name}), {threads} thread(s)")
    for m, k, n in SHAPES:
        ops = 2 * m * k * n
        a, w = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
        c = np.zeros((m, n), np.float32)
        t32 = median_seconds(bound(jm, names["f32", m, k, n], [a, w, c], m, threads), repeat)
        a8, w8 = rng.integers(0, 256, (m, k)).astype(np.uint8), rng.integers(-127, 128, (k, n)).astype(np.int8)
        azp, bzp = np.array([128], np.uint8), np.zeros(n, np.int8)
        c32 = np.zeros((m, n), np.int32)
        t8 = median_seconds(bound(jm, names["i8", m, k, n], [a8, w8, azp, bzp, c32], m, threads), repeat)
        tile = tile_for(features, n)
        packed = pack_weights(w8, tile.group, tile.nr, 1, tile.b_bytes)
        tp = median_seconds(bound(jm, names["i8 packed", m, k, n], [a8, w8, azp, bzp, c32, packed], m, threads),
                            repeat)
        bias, mult, zp = np.zeros(n, np.int32), np.full(n, 1e-4, np.float32), np.array([0], np.uint8)
        y8 = np.zeros((m, n), np.uint8)
        trq = median_seconds(bound(jm, names["i8+rq", m, k, n], [a8, w8, azp, bzp, y8, bias, mult, zp, packed], m,
                                   threads), repeat)
        print(f"  {m:>3}x{k}x{n}: f32 {t32 * 1e6:8.1f} us {ops / t32 / 1e9:6.1f} GFLOPS | int8 {t8 * 1e6:8.1f} us "
              f"({t32 / t8:4.2f}x) | prepacked {tp * 1e6:8.1f} us {ops / tp / 1e9:6.1f} GOPS ({t32 / tp:4.2f}x) | "
              f"prepacked+requantize {trq * 1e6:8.1f} us ({t32 / trq:4.2f}x)")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    host = host_features()
    print(f"host CPU features: avx512vnni={'+avx512vnni' in host.split(',')} avx2={'+avx2' in host.split(',')}")
    run("host", None, host, args.repeat, args.threads)
    if "+avx2" in host.split(","):
        run("AVX2 (x86-64-v3)", *AVX2, args.repeat, args.threads)


if __name__ == "__main__":
    main()
