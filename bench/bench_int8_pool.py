"""The int8 conv + max pool fusion (passes/fuse_int8_pool.py) on bench_quant's convnet layers: each
conv + pool stage as static int8 with the pool fused into the conv's kernel vs left as its own pass,
and float32, on the host's path and the forced AVX2 path; the runners are called round-robin
(bench_quant.interleaved_medians), batch 64, one thread by default. Prints medians, ratios and a
`bar:` line per path (the fusion pays: fused faster than unfused on every conv + pool stage).

    python bench/bench_int8_pool.py [--seconds S] [--threads T] [--batch B]
"""
from __future__ import annotations

import os

import numpy as np

from bench_int8_layers import layer_models, parse_args   # bench/ is the script's directory
from bench_quant import interleaved_medians
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def compile_without_pool_fusion(graph, target):
    """graph compiled with the default pipeline less fuse-int8-pool (the pool stays its own node)."""
    from kcompile.compiler.driver import Compilation, CompileOptions, c_symbol, graph_pipeline
    from kcompile.compiler.jit import NativeFunction
    passes = tuple(p for p in graph_pipeline(3, target=target) if p != "fuse-int8-pool")
    return NativeFunction(graph, Compilation({"forward": graph}, c_symbol(graph.name),
                                             CompileOptions(3, target=target, passes=passes)))


def main(argv=None):
    args = parse_args(argv, __doc__)
    import kcompile as kc
    from kcompile.compiler.jit import compile_graph
    from kcompile.compiler.target import host_target
    rng = np.random.default_rng(0)
    print(f"batch {args.batch}, {args.threads} thread(s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  {'path':<5} {'layer':<24} {'f32 ms':>8} {'unfused':>8} {'fused':>8} {'unf/fused':>9} {'f32/fused':>9}")
    gains = {}
    for path, target in (("host", None), ("AVX2", host_target().without("avx512f"))):
        for name, (shape, make) in layer_models().items():
            if "pool" not in name:
                continue
            kc.utils.set_random_seed(0)
            fm = kc.Sequential([kc.Input(shape)] + make())
            x = rng.random((256,) + shape).astype(np.float32)
            gf, gq = fm.forward_graph(), kc.quantization.quantize(fm, calibration_data=x).forward_graph()
            fns = [compile_graph(gf, target=target), compile_without_pool_fusion(gq, target),
                   compile_graph(gq, target=target)]
            xb = np.ascontiguousarray(x[:args.batch])
            t = interleaved_medians([lambda f=f: f([xb], nthreads=args.threads) for f in fns], args.seconds)
            gains.setdefault(path, []).append(t[1] / t[2])
            print(f"  {path:<5} {name:<24} {1e3 * t[0]:8.3f} {1e3 * t[1]:8.3f} {1e3 * t[2]:8.3f} {t[1] / t[2]:9.2f} "
                  f"{t[0] / t[2]:9.2f}")
    for path, g in gains.items():
        print(f"bar: {path} path, fused conv + pool faster than unfused on every stage "
              f"(min {min(g):.2f}x): {'met' if min(g) > 1.0 else 'NOT met'}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
