"""kcompile's thread pool (ir/native_pool.py) against libgomp's, one child process per pool.

Each child (KCOMPILE_THREAD_POOL=native or gomp; one pool per process, so that the other pool's
spinning worker does not hold the second core) compiles the MNIST MLP and calls it on 1 and on 2
threads in turns, in bursts of 5 (the first call not counted), then pauses 2 ms (an idle worker may
fall asleep: the next burst's first calls pay its wake-up). Scenarios:

  quiet   nothing else runs
  busy    a busy-loop process holds one of the cores (what another job, or a peer runtime's
          spinning pool, does to a 2-core machine)

Prints medians and 90th percentiles per batch size, and each 2-thread time as a ratio of the same
child's 1-thread time.

    python bench/bench_thread_pool.py [--batches 1,8,64] [--rounds 300]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--scenarios", default="quiet,busy")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def runners(batch):
    """{name: call}: the MLP on 1 thread and on 2 threads, on this process's pool."""
    from bench_models import mlp_graph
    from kcompile.compiler.jit import compile_graph
    x = np.random.default_rng(0).random((batch, 784), dtype=np.float32)
    fn = compile_graph(mlp_graph())
    return {threads: (lambda p=fn.plan(nthreads=threads): p([x])) for threads in (1, 2)}


def measure(calls, rounds):
    times = {k: [] for k in calls}
    order = list(calls)
    for r in range(rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            for i in range(5):
                t0 = time.perf_counter()
                calls[name]()
                if i:
                    times[name].append(time.perf_counter() - t0)
        time.sleep(0.002)
    return times


def child(args):
    """Measure this process's pool; print one line per batch: batch, median and p90 per thread count."""
    for batch in [int(b) for b in args.batches.split(",")]:
        times = measure(runners(batch), args.rounds)
        print("row", batch, *(f"{statistics.median(t)} {np.percentile(t, 90)}" for t in times.values()), flush=True)


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    if args.child:
        return child(args)
    print(f"cores: {os.cpu_count()}; bursts of 5 calls (first not counted), 2 ms pause per round, {args.rounds} rounds")
    print(f"  {'scenario':8} {'batch':>5}  {'pool':6} {'1 thread us':>12} {'2 threads us':>13} {'p90 2t us':>10} {'2t / 1t':>8}")
    for scenario in args.scenarios.split(","):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if scenario == "busy" else None
        try:
            for pool in ("native", "gomp"):
                env = dict(os.environ, KCOMPILE_THREAD_POOL=pool)
                out = subprocess.run([sys.executable, __file__, "--child", "--batches", args.batches,
                                      "--rounds", str(args.rounds)], env=env, capture_output=True, text=True,
                                     check=True).stdout
                for line in out.splitlines():
                    if not line.startswith("row "):
                        continue
                    _, batch, med1, _p1, med2, p2 = line.split()
                    med1, med2, p2 = float(med1), float(med2), float(p2)
                    print(f"  {scenario:8} {batch:>5}  {pool:6} {med1 * 1e6:12.1f} {med2 * 1e6:13.1f} "
                          f"{p2 * 1e6:10.1f} {med2 / med1:8.2f}")
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()


if __name__ == "__main__":
    main()
