"""Benchmark: GFLOP/s of the packed matmul kernel (1 and 2 threads) vs NumPy's BLAS, plus a conv layer.

Run: python bench/bench_kernels.py [--repeat 50].  Prints medians and ratios; not a test.
NumPy is timed in its own phase before ours (OpenBLAS threads keep spinning after a call and
would steal the second core from our threads).  On a machine shared with other jobs, run it with
OMP_PROC_BIND=spread as well (see compiler/threads.py): unpinned libgomp workers may share a core.
"""
from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np
from llvmlite import ir

from kcompile.compiler.kernels.conv import conv_function
from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.matmul import matmul_function
from kcompile.compiler.kernels.standalone import JitModule, host_features
from kcompile.ir.ops.nn import conv2d_ref
import os
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

MATMULS = [(64, 784, 512), (1, 784, 512), (512, 512, 512), (64, 512, 10), (256, 128, 128)]
# the MNIST convnet's convolutions: (batch, H, W, Cin, Cout, k)
CONVS = [(64, 28, 28, 1, 32, 3), (64, 13, 13, 32, 64, 3)]
THREADS = (1, 2)


def median_seconds(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def build(features):
    mod = ir.Module("bench")
    names = {}
    for m, k, n in MATMULS:
        fn = matmul_function(mod, features, "f32", ("N", k), (k, n))
        fn.linkage = "external"
        names["mm", m, k, n] = fn.name
    for c in CONVS:
        fn = conv_function(mod, features, "f32", "forward", _geo(c))
        fn.linkage = "external"
        names["conv", c] = fn.name
    t = time.perf_counter()
    jm = JitModule(mod)
    print(f"compile (LLVM O3, {len(names)} kernels): {time.perf_counter() - t:.2f} s")
    return jm, names


def _geo(c):
    _, h, w, cin, cout, k = c
    return geometry2d(("N", h, w, cin), (k, k), (1, 1), (1, 1), "valid", 1, cout)


def kernel(jm, name, arrays, batch, nthreads):
    f = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * len(arrays), ctypes.c_int64, ctypes.c_int64)(jm.address(name))
    ptrs = [a.ctypes.data for a in arrays]
    return lambda: f(*ptrs, batch, nthreads)


def numpy_matmuls(repeat, rng) -> dict:
    """NumPy's times first: once libgomp is loaded (and maybe pinned by OMP_PROC_BIND), the BLAS
    threads created afterwards would inherit the pinning."""
    data, times = {}, {}
    for m, k, n in MATMULS:
        a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
        c = np.empty((m, n), np.float32)
        data[m, k, n] = (a, b, c)
        times[m, k, n] = median_seconds(lambda: np.matmul(a, b, out=c), repeat)
    time.sleep(0.5)   # OpenBLAS threads spin for a while after a call
    return data, times


def bench_matmuls(jm, names, repeat, data, numpy_times):
    for (m, k, n), (a, b, c) in data.items():
        flops, theirs = 2.0 * m * k * n, numpy_times[m, k, n]
        ours = [median_seconds(kernel(jm, names["mm", m, k, n], [a, b, c], m, t), repeat) for t in THREADS]
        assert np.allclose(c, a @ b, rtol=1e-4, atol=1e-3)
        mine = "  ".join(f"{t}T {s * 1e6:8.1f} us {flops / s / 1e9:6.1f} GF/s" for t, s in zip(THREADS, ours))
        print(f"matmul {m:>4}x{k:>4}x{n:>4}: ours {mine} | numpy {theirs * 1e6:8.1f} us "
              f"{flops / theirs / 1e9:6.1f} GF/s | numpy time / ours ({THREADS[-1]}T) {theirs / ours[-1]:.2f}")


def bench_convs(jm, names, repeat, rng):
    for c in CONVS:
        nb, h, w, cin, cout, k = c
        x = rng.standard_normal((nb, h, w, cin), np.float32)
        wt = rng.standard_normal((k, k, cin, cout), np.float32)
        g = _geo(c)
        y = np.empty((nb, g.oh, g.ow, cout), np.float32)
        ours = [median_seconds(kernel(jm, names["conv", c], [x, wt, y], nb, t), repeat) for t in THREADS]
        assert np.allclose(y, conv2d_ref(x, wt, {"strides": (1, 1), "dilations": (1, 1), "padding": "valid",
                                                 "groups": 1}), rtol=1e-4, atol=1e-3)
        flops = 2.0 * nb * g.oh * g.ow * cout * k * k * cin
        print(f"conv2d {c}: " + "  ".join(f"{t}T {s * 1e6:8.1f} us {flops / s / 1e9:6.1f} GF/s"
                                          for t, s in zip(THREADS, ours)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args()
    features = host_features()
    print("CPU features used:", ",".join(f for f in ("avx512f", "avx2", "fma", "avx") if f"+{f}," in features + ","))
    rng = np.random.default_rng(0)
    data, numpy_times = numpy_matmuls(args.repeat, rng)
    jm, names = build(features)
    bench_matmuls(jm, names, args.repeat, data, numpy_times)
    bench_convs(jm, names, args.repeat, rng)


if __name__ == "__main__":
    main()
