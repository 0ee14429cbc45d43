"""Compile latency: a fresh process's first predict_on_batch and first train_on_batch.

For the book's MNIST MLP and convnet, each measured in new processes started from this one:
  kcompile cold        an empty compile cache: nothing ever compiled on this machine (passes,
                       codegen, LLVM for the glue and for the shared kernels); the default tiered
                       JIT (compiler/tier_up.py): the first calls run O0 code while a forked child
                       compiles the optimized code ("optimized s": from compile() until it is published)
  kcompile cold untiered   the same with KCOMPILE_TIER_UP=0: the optimized code before the first call
  kcompile new model   a cache that another model of the same kind filled (other layer widths): the
                       kernel library (compiler/kernel_library.py) is there, the model's glue is not
  kcompile warm        the cache a previous process filled for this model (code loaded from disk)
  kcompile cold + bg   cold untiered, with KCOMPILE_BACKGROUND_COMPILE=1 (opt-in): the train step announced
                       by compile() is started beside the first predict (compiler/background_compile.py)
  keras-jax            Keras 3 on JAX, whose XLA compiles in the process (it keeps no cache by default)
The timed region starts before `model.compile()` (kcompile's compile() announces the train step, which
the first predict's compile may start on the second core where KCOMPILE_BACKGROUND_COMPILE=1:
compiler/background_compile.py), so that nothing is left out of it; "first both" is compile() + the first predict + the first train step.
Prints the medians over --repeats processes (wall and the child's CPU time, with the children it has
reaped by then: a tier-up child still compiling is not in it; on a loaded machine the CPU time is the
steadier figure), the ratios to Keras and a line per bar of issue #13. Time to import
the libraries is reported apart; the compile latency is what the first calls wait.

    python bench/bench_compile_latency.py [--repeats 3] [--models mlp,convnet] [--bytecode-cache]

Where PYTHONDONTWRITEBYTECODE is set (as on the shared dev host), every process compiles the Python
sources it imports, and the modules a first call imports lazily (kcompile's lowerings, JAX's and
XLA's compile paths) count in its time: about 0.17 s of a cold kcompile MLP. --bytecode-cache gives
the children Python's default behaviour instead (a bytecode cache, in a temporary PYTHONPYCACHEPREFIX
that one unmeasured run of each runner fills first), for every runner alike.
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

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
runner, model_name = sys.argv[1], sys.argv[2]
width = 384 if model_name.endswith("-other") else 512       # another model of the same kind
filters = (24, 48) if model_name.endswith("-other") else (32, 64)
if runner == "keras-jax":
    os.environ["KERAS_BACKEND"] = "jax"
    import keras as lib
else:
    import kcompile as lib
t1 = time.perf_counter()
L = lib.layers
if model_name.startswith("mlp"):
    model = lib.Sequential([lib.Input((784,)), L.Dense(width, activation="relu"), L.Dense(10, activation="softmax")])
    x = np.random.rand(64, 784).astype("float32")
else:
    model = lib.Sequential([lib.Input((28, 28, 1)), L.Conv2D(filters[0], 3, activation="relu"), L.MaxPooling2D(),
                            L.Conv2D(filters[1], 3, activation="relu"), L.MaxPooling2D(), L.Flatten(),
                            L.Dense(10, activation="softmax")])
    x = np.random.rand(64, 28, 28, 1).astype("float32")
y = np.random.randint(0, 10, 64)
cpu = lambda: time.process_time() + sum(os.times()[2:4])   # with the children (a forked compile)
t2 = time.perf_counter(); c2 = cpu()
model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
t2c = time.perf_counter(); model.predict_on_batch(x)
t3 = time.perf_counter(); model.train_on_batch(x, y)
t4 = time.perf_counter(); c4 = cpu()
if runner != "keras-jax":
    lib.wait_for_optimized_code()      # (tiered JIT: until the child's optimized code is published)
t5 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "compile": t2c - t2, "predict": t3 - t2c, "train": t4 - t3, "cpu": c4 - c2,
                  "optimized": t5 - t2}))
"""


PYCACHE = None     # --bytecode-cache: the children's PYTHONPYCACHEPREFIX


def run_child(runner: str, model: str, cache_dir: str, **more_env) -> dict:
    env = dict(os.environ, KCOMPILE_CACHE_DIR=cache_dir, KERAS_BACKEND="jax", **more_env)
    env.pop("KCOMPILE_DISABLE_CACHE", None)
    for default in ("KCOMPILE_BACKGROUND_COMPILE", "KCOMPILE_TIER_UP"):
        if default not in more_env:
            env.pop(default, None)
    if PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    out = subprocess.run([sys.executable, "-c", CHILD, runner, model], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{runner} {model} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model: str, repeats: int, peers: list) -> dict:
    results = {name: [] for name in ["kcompile cold", "kcompile cold untiered", "kcompile cold + bg",
                                     "kcompile new model", "kcompile warm"] + peers}
    if PYCACHE:     # fill the bytecode cache (not the compile cache) before anything is measured
        for runner in ["kcompile"] + peers:
            with tempfile.TemporaryDirectory(prefix="kcompile-bench-cache-") as cache:
                run_child(runner, model, cache)
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="kcompile-bench-cache-") as cache:
            results["kcompile cold"].append(run_child("kcompile", model, cache))
            results["kcompile warm"].append(run_child("kcompile", model, cache))
        with tempfile.TemporaryDirectory(prefix="kcompile-bench-cache-") as cache:
            results["kcompile cold untiered"].append(run_child("kcompile", model, cache, KCOMPILE_TIER_UP="0"))
        with tempfile.TemporaryDirectory(prefix="kcompile-bench-cache-") as cache:
            results["kcompile cold + bg"].append(run_child("kcompile", model, cache, KCOMPILE_BACKGROUND_COMPILE="1",
                                                           KCOMPILE_TIER_UP="0"))
        with tempfile.TemporaryDirectory(prefix="kcompile-bench-cache-") as cache:
            run_child("kcompile", model + "-other", cache)           # fills the kernel library
            results["kcompile new model"].append(run_child("kcompile", model, cache))
        for peer in peers:
            results[peer].append(run_child(peer, model, tempfile.gettempdir()))
    return {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", default="mlp,convnet")
    p.add_argument("--bytecode-cache", action="store_true",
                   help="children keep compiled Python bytecode (Python's default) in a temporary folder")
    args = p.parse_args(argv)
    global PYCACHE
    if args.bytecode_cache:
        PYCACHE = tempfile.mkdtemp(prefix="kcompile-bench-pycache-")
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras  # noqa: F401  (a peer: optional)
        peers = ["keras-jax"]
    except ImportError:
        peers = []
        print("keras not installed: kcompile only (pip install -e '.[bench]')")
    bytecode = "bytecode cache (--bytecode-cache)" if PYCACHE else \
        ("no bytecode cache (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "bytecode cache")
    print(f"threads: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; CPU features: {_features()}; "
          f"medians of {args.repeats} processes; Python {bytecode}")
    print("timed from model.compile() on: compile() + first predict_on_batch + first train_on_batch (first both)")
    print(f"{'model':8} {'runner':20} {'import s':>9} {'compile s':>10} {'predict s':>10} {'train s':>8} "
          f"{'first both s':>13} {'cpu s':>7} {'vs keras':>9} {'cpu vs keras':>13} {'optimized s':>12}")
    bars = []
    for model in args.models.split(","):
        table = measure(model, args.repeats, peers)
        keras = table.get("keras-jax")
        keras_total = _both(keras) if keras else None
        for name, t in table.items():
            total = _both(t)
            ratio = f"{total / keras_total:8.2f}x" if keras_total else ""
            cpu_ratio = f"{t['cpu'] / keras['cpu']:12.2f}x" if keras else ""
            print(f"{model:8} {name:20} {t['import']:9.3f} {t['compile']:10.3f} {t['predict']:10.3f} {t['train']:8.3f} "
                  f"{total:13.3f} {t['cpu']:7.3f} {ratio:>9} {cpu_ratio:>13} {t['optimized']:12.3f}")
        if keras_total:
            total = lambda name: _both(table[name])
            bars.append(_bar(f"{model}: cold first predict + train step <= Keras-JAX", total("kcompile cold") / keras_total, 1.0))
            bars.append(_bar(f"{model}: warm cache <= 0.2x Keras-JAX", total("kcompile warm") / keras_total, 0.2))
            bars.append(f"info: {model}: new model with the kernel library cached {total('kcompile new model') / keras_total:.2f}x Keras-JAX")
            bars.append(f"info: {model}: cold without the tiered JIT (KCOMPILE_TIER_UP=0) "
                        f"{total('kcompile cold untiered') / keras_total:.2f}x Keras-JAX")
            bars.append(f"info: {model}: cold, until the optimized code runs (tier 1 published) "
                        f"{table['kcompile cold']['optimized'] / keras_total:.2f}x Keras-JAX's first both")
            bars.append(f"info: {model}: cold with the background train-step compile (opt-in, untiered) "
                        f"{total('kcompile cold + bg') / keras_total:.2f}x Keras-JAX")
    print("\n".join(bars))
    if PYCACHE:
        shutil.rmtree(PYCACHE, ignore_errors=True)


def _both(t: dict) -> float:
    """compile() + the first predict + the first train step (medians of each)."""
    return t["compile"] + t["predict"] + t["train"]


def _bar(what: str, ratio: float, limit: float) -> str:
    return f"bar: {what}: {ratio:.2f}x {'met' if ratio <= limit else 'NOT met'}"


def _features() -> str:
    from kcompile.compiler.target import host_target
    t = host_target()
    wanted = ("avx2", "fma", "avx512f", "avx512vnni")
    return f"{t.cpu} " + " ".join(f for f in wanted if t.has(f))


if __name__ == "__main__":
    main()
