"""The MNIST MLP's native train step (RMSprop, batch 128) with and without this branch's two changes,
compiled side by side in one process and timed in turns:

  copy + pack   parameter updates computed into the workspace and copied after the last node,
                and the weight gradient's transposed A (x^T) packed (the code before both changes)
  in place      updates written straight into the parameters (passes/update_in_place.py)
  in place + A  ... and x^T read in place while K = the batch fits one KC block (kernels/gemm.py)

Each variant is its own compilation (no disk cache, no kernel library, so the switches reach the
code); all give bitwise the same weights (checked here). Calls take turns in bursts of 5 (first not
counted); 1 thread is timed by the thread's CPU time (what load does not inflate), 2 threads by
the wall clock. Prints medians and each variant's ratio to `copy + pack`.

    python bench/bench_train_step_ab.py [--rounds 40] [--threads 1,2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def step_graph():
    import kcompile as kc
    from kcompile.cli.train import train_step_graph
    L = kc.layers
    model = kc.Sequential([kc.layers.Input(shape=(784,)), L.Dense(512, activation="relu"),
                           L.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    return train_step_graph(model, None, None)


def compile_variant(graph, in_place: bool, direct_t_a: bool):
    from kcompile.compiler.driver import Compilation, CompileOptions
    from kcompile.compiler.jit import NativeFunction, c_symbol
    from kcompile.compiler.kernels import gemm
    from kcompile.passes import memory
    saved = memory.in_place_updates, gemm.PACK_T_A_MIN_BLOCKS
    try:
        if not in_place:
            memory.in_place_updates = lambda graph, home: {}
        if not direct_t_a:
            gemm.PACK_T_A_MIN_BLOCKS = 0     # K > -KC: always packed, as before
        return NativeFunction(graph, Compilation({"forward": graph}, c_symbol(graph.name), CompileOptions(3),
                                                 disk_cache=None, kernel_library=False))   # compiled here, eagerly
    finally:
        memory.in_place_updates, gemm.PACK_T_A_MIN_BLOCKS = saved


VARIANTS = {"copy + pack": (False, False), "in place": (True, False), "in place + A": (True, True)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--threads", default="1,2")
    args = p.parse_args(argv)
    graph = step_graph()
    fns = {name: compile_variant(graph, *flags) for name, flags in VARIANTS.items()}
    start = {q.param_name: graph.param_values[q.param_name] for q in graph.params}
    params = {name: {k: v.copy() for k, v in start.items()} for name in fns}
    rng = np.random.default_rng(0)
    x = rng.random((128, 784), dtype=np.float32)
    y = rng.integers(0, 10, 128).astype(np.float32)
    state = [np.array(0, np.int64), np.array(1e-3, np.float32), np.array(0, np.float32)]
    for name, fn in fns.items():   # same weights after the same steps, bit for bit
        for _ in range(3):
            fn([x, y, *state], params[name], nthreads=1)
    first = params["copy + pack"]
    same = all(np.array_equal(first[k], params[n][k]) for n in fns for k in start)
    print(f"bitwise equal weights after 3 steps: {same}")
    load = os.getloadavg()[0]
    for nthreads in (int(t) for t in args.threads.split(",")):
        clock = time.thread_time if nthreads == 1 else time.perf_counter
        times = {name: [] for name in fns}
        for _ in range(args.rounds):
            for name, fn in fns.items():
                for k in range(5):
                    t0 = clock()
                    fn([x, y, *state], params[name], nthreads=nthreads)
                    if k:
                        times[name].append(clock() - t0)
        base = statistics.median(times["copy + pack"])
        what = "thread CPU time" if nthreads == 1 else "wall"
        print(f"{nthreads} thread(s), {what}, median of {4 * args.rounds} calls, load average {load:.1f} "
              f"-> {os.getloadavg()[0]:.1f}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:14s} {med * 1e3:7.3f} ms  {med / base:5.3f}x")


if __name__ == "__main__":
    main()
