"""Data-parallel fit benchmark: per-step time and scaling efficiency for 1 and 2 MPI processes
(one compute thread each), the time per phase of a step, and a ring-allreduce model of larger worlds.

Model: the book's MNIST MLP (784-512-10, 407,050 f32 parameters, a 1.6 MB packed gradient buffer),
Adam, synthetic data. Two workloads:
  strong scaling: global batch G fixed (each of P processes computes G/P rows);
                  efficiency = speedup / P = T(1) / T(P) / P;
  weak scaling:   per-process batch b fixed (global batch P*b); efficiency = T(1, b) / T(P, P*b).
The phase times (gradient entry, allreduce, update entry, metric gather) come from the
DataParallelFit counters. The simulated table uses the measured per-process compute time and the
packed buffer size with the ring-allreduce cost 2(P-1)/P * M/B + 2(P-1) * latency.

    python bench/bench_distributed.py [--steps 60] [--batch 128] [--repeats 3]
The host is shared: read medians and ratios, and the load printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

NETWORKS = [("10 GbE TCP", 1.25e9, 30e-6),
            ("25 GbE RoCE", 3.1e9, 5e-6), ("100 Gb/s InfiniBand HDR", 12.0e9, 2e-6)]
WORLDS = [2, 4, 8, 16, 32, 64]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    p.add_argument("--batch", type=int, default=128, help="global batch (strong) / per-process batch (weak)")
    p.add_argument("--repeats", type=int, default=3, help="measurements per configuration (median reported)")
    p.add_argument("--worker", nargs=2, metavar=("GLOBAL_BATCH", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


# -- worker: runs under mpiexec -n P ------------------------------------------------------------
def worker(global_batch: int, steps: int, out: str):
    import kcompile as kc
    from kcompile import distribution
    world = distribution.initialize()
    kc.utils.set_random_seed(0)
    model = kc.Sequential([kc.Input((784,)), kc.layers.Dense(512, activation="relu"),
                           kc.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=kc.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rs = np.random.RandomState(0)
    x = rs.rand(global_batch * steps, 784).astype(np.float32)
    y = rs.randint(0, 10, len(x))
    distribution.set_distribution(distribution.DataParallel())
    model.fit(x[:global_batch * 3], y[:global_batch * 3], batch_size=global_batch, epochs=1, verbose=0)  # compile
    dp = model._data_parallel
    dp.seconds = dict.fromkeys(dp.seconds, 0.0)
    dp.steps = 0
    start = time.perf_counter()
    model.fit(x, y, batch_size=global_batch, epochs=1, shuffle=False, verbose=0)
    elapsed = time.perf_counter() - start
    size = next(v.layout.size for k, v in model._compiled.step_cache.items() if k[0] == "split")
    alone = allreduce_alone(world, size)
    if world.rank == 0:
        with open(out, "w") as f:
            json.dump({"step_s": elapsed / dp.steps, "phases": {k: v / dp.steps for k, v in dp.seconds.items()},
                       "packed_bytes": 4 * size, "allreduce_alone_s": alone}, f)


def allreduce_alone(world, size: int, repeats: int = 30) -> float:
    """Median time of the packed buffer's allreduce after a barrier: the transfer without the wait for a
    slower peer that the in-fit "allreduce" phase also contains."""
    if world.size == 1:
        return 0.0
    from mpi4py import MPI
    buf, times = np.ones(size, np.float32), []
    for _ in range(repeats):
        world.comm.Barrier()
        start = time.perf_counter()
        world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- driver --------------------------------------------------------------------------------------
def mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if found is None:
        raise SystemExit('bench_distributed: no mpiexec found; pip install "kcompile[distributed]"')
    return found


def measure(processes: int, global_batch: int, args) -> dict:
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            env = dict(os.environ, KCOMPILE_NUM_THREADS="1", OMP_NUM_THREADS="1")
            subprocess.run([mpiexec(), "-n", str(processes), sys.executable, os.path.abspath(__file__), "--steps",
                            str(args.steps), "--worker", str(global_batch), out], env=env, check=True)
            with open(out) as f:
                runs.append(json.load(f))
    best = sorted(runs, key=lambda r: r["step_s"])[len(runs) // 2]   # the median run, phases included
    return best


def ring_allreduce_s(processes: int, nbytes: int, bandwidth: float, latency: float) -> float:
    """Ring allreduce: a reduce-scatter and an allgather, each P-1 steps of M/P bytes."""
    return 2 * (processes - 1) / processes * nbytes / bandwidth + 2 * (processes - 1) * latency


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(int(args.worker[0]), args.steps, args.worker[1])
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, 1 compute thread per process")
    b = args.batch
    one = measure(1, b, args)
    strong = measure(2, b, args)
    weak = measure(2, 2 * b, args)
    rows = [("1 process", b, b, one), ("2 processes, strong", b, b // 2, strong), ("2 processes, weak", 2 * b, b, weak)]
    print(f"\n| run | global batch | rows per process | step ms | samples/s | efficiency | "
          "grad entry ms | allreduce (wait+transfer) ms | transfer alone ms | update ms | gather ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, g, local, r in rows:
        procs = 1 if r is one else 2
        eff = (one["step_s"] / r["step_s"] / procs) if g == b else one["step_s"] / r["step_s"]
        ph = r["phases"]
        print(f"| {name} | {g} | {local} | {1e3 * r['step_s']:.2f} | {g / r['step_s']:.0f} | {100 * eff:.0f}% | "
              f"{1e3 * ph['gradient entry']:.2f} | {1e3 * ph['allreduce']:.2f} | {1e3 * r['allreduce_alone_s']:.2f} | "
              f"{1e3 * ph['update entry']:.2f} | "
              f"{1e3 * ph['gather']:.2f} |")
    simulate(one, strong)


def simulate(one: dict, two: dict):
    """Weak scaling of larger worlds: measured per-process compute + modelled ring allreduce."""
    nbytes = one["packed_bytes"]
    compute = one["step_s"] - one["phases"]["allreduce"]
    # effective shared-memory bandwidth from the 2-process measurement (2(P-1)/P = 1 for P=2)
    shm_bw = nbytes / max(two["allreduce_alone_s"], 1e-9)
    print(f"\nring allreduce model: M = {nbytes / 1e6:.2f} MB packed gradients, per-process compute "
          f"{1e3 * compute:.2f} ms (measured, 1 process); shared memory: {shm_bw / 1e9:.2f} GB/s measured")
    print("| network (bandwidth, latency) | " + " | ".join(f"P={p}" for p in WORLDS) + " |")
    print("|---|" + "---|" * len(WORLDS))
    for name, bw, lat in NETWORKS:
        cells = []
        for p in WORLDS:
            t = ring_allreduce_s(p, nbytes, bw, lat)
            cells.append(f"{1e3 * t:.2f} ms, {100 * compute / (compute + t):.0f}%")
        print(f"| {name} ({bw / 1e9:.1f} GB/s, {lat * 1e6:.0f} us) | " + " | ".join(cells) + " |")
    print("cells: allreduce time per step, weak-scaling efficiency compute / (compute + allreduce), no overlap")


if __name__ == "__main__":
    main()
