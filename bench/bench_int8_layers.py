"""Per-layer int8 vs float32 timing of bench_quant's MNIST convnet: where the int8 model spends its time.

Each layer (with the max pooling after it) is its own one-layer model, float32 and static int8
(calibrated on random images), compiled for the host (AVX-512 VNNI here) and for the forced AVX2
path; the four runners are called round-robin (bench_quant.interleaved_medians), batch 64, one
thread by default. Prints medians and ratios; the machine is shared, so read the ratios.

    python bench/bench_int8_layers.py [--seconds S] [--threads T] [--batch B]
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from bench_quant import interleaved_medians   # bench/ is the script's directory
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def layer_models():
    """name -> (input shape, layers) for the convnet's stages."""
    import kcompile as kc
    L = kc.layers
    return {
        "conv 3x3x1->16 + pool": ((28, 28, 1), lambda: [L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D()]),
        "conv 3x3x16->32 + pool": ((13, 13, 16), lambda: [L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D()]),
        "dense 800->10": ((800,), lambda: [L.Dense(10, activation="softmax")]),
    }


def parse_args(argv, doc: str):
    """--seconds, --threads, --batch of a per-layer benchmark (this one and bench_int8_pool.py)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv, __doc__)
    import kcompile as kc
    from kcompile.compiler.jit import compile_graph
    from kcompile.compiler.target import host_target
    avx2 = host_target().without("avx512f")
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'layer':<24} {'f32 ms':>8} {'int8 ms':>8} {'f32/int8':>9} | {'AVX2 f32':>9} {'int8':>7} {'f32/int8':>9}")
    for name, (shape, make) in layer_models().items():
        kc.utils.set_random_seed(0)
        fm = kc.Sequential([kc.Input(shape)] + make())
        x = rng.random((256,) + shape).astype(np.float32)
        gf, gq = fm.forward_graph(), kc.quantization.quantize(fm, calibration_data=x).forward_graph()
        fns = [compile_graph(gf), compile_graph(gq), compile_graph(gf, target=avx2), compile_graph(gq, target=avx2)]
        xb = np.ascontiguousarray(x[:args.batch])
        t = interleaved_medians([lambda f=f: f([xb], nthreads=args.threads) for f in fns], args.seconds)
        print(f"  {name:<24} {1e3 * t[0]:8.3f} {1e3 * t[1]:8.3f} {t[0] / t[1]:9.2f} | {1e3 * t[2]:9.3f} "
              f"{1e3 * t[3]:7.3f} {t[2] / t[3]:9.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
