"""Inference benchmark: the book's MNIST MLP and convnet at batch 1, 8, 64 and 256.

kcompile through the front end (`model.predict_on_batch` on a kc.Sequential model, in-process JIT)
and through an AOT artifact (`kcompile.runtime.load(...).predict`), vs onnxruntime (CPU, same thread
count), the NumPy reference interpreter, and Keras 3 on JAX and PyTorch when installed, all in one
process per thread count (at 1 thread runners take turns in random order, by default in bursts of
5 calls with the first not counted: steady state; `--rotation call` counts every call, each after
another runtime's; with several threads each runner runs alone, one after another, because idle
workers that spin hold a core against whoever runs next). Prints per-call medians and best times,
every runner's time over onnxruntime's ("t / t_ORT": below 1 is faster than onnxruntime), the max
abs difference from the reference, then:

  * call-path overhead at batch 1: each Python path's median minus the native entry's own median,
    timed in a native loop (bench/native_loop.py), with a bar line per path (<= 5 us);
  * the GEMM-bound layers' fraction of the FMA peak, each layer compiled alone and timed call by
    call in native code (best call: on a shared machine a median includes other jobs' time slices); the peak is cores x FMA units x vector width x 2 x clock, measured by
    bench/fma_peak.py (clock from a dependent-add chain, units from an FMA throughput loop);
  * a bar line per target of issue #13 (batch 1 <= 0.9 x onnxruntime's time, batch >= 64 <= 1.0 x,
    GEMM-bound layers >= 95 % of peak).

    python bench/bench_models.py [--threads 1,2] [--seconds S] [--models mlp,convnet] [--batches 1,8,64,256]
                                 [--rotation burst|call]

Several thread counts run as one child process each (XLA's and BLAS's thread settings are fixed at
import), so the whole run is one process tree.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2", help="thread counts (comma-separated), for every runner")
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per (model, batch, runner)")
    p.add_argument("--models", default="mlp,convnet")
    p.add_argument("--batches", default="1,8,64,256")
    p.add_argument("--rotation", choices=("burst", "call"), default="burst",
                   help="runners take turns in bursts of %d calls, the first not counted (steady state; "
                        "default), or call by call, every call counted" % BURST)
    p.add_argument("--skip-layers", action="store_true", help="skip the per-layer fraction of peak")
    p.add_argument("--layers-only", action="store_true", help="only the per-layer fraction of peak")
    p.add_argument("--layer-seconds", type=float, default=3.0,
                   help="time budget per (layer, batch) for the fraction of peak (best call of it; at 0.5 s "
                        "the batch-256 convolutions' best call read 0.5-1.5 points lower: too few calls)")
    p.add_argument("--peers", default="kcompile,kcompile-aot,onnxruntime,reference,keras-jax,torch",
                   help="runners to try; missing optional ones are skipped with a note")
    return p.parse_args(argv)


def pin_threads(threads: int):
    """Thread settings that must be in place before JAX/XLA or torch start."""
    os.environ["KCOMPILE_NUM_THREADS"] = str(threads)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1 else ""
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()


# -- the models (Keras initializers: glorot_uniform kernels, zero biases) ------------------------
def _glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def mlp_graph(seed=0):
    """Dense(512, relu) -> Dense(10, softmax) on flattened 28x28 images."""
    from kcompile.ir import GraphBuilder, TensorType
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mnist_mlp")
    x = b.input("images", TensorType(["N", 784]))
    h = _dense(b, "dense", x, _glorot(rng, (784, 512), 784, 512), "relu")
    y = _dense(b, "dense_1", h, _glorot(rng, (512, 10), 512, 10), "softmax")
    return b.build([y], ["probs"])


def convnet_graph(seed=0):
    """Conv2D(32,3)-MaxPool-Conv2D(64,3)-MaxPool-Conv2D(128,3)-Flatten-Dense(10, softmax)."""
    from kcompile.ir import GraphBuilder, TensorType
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mnist_convnet")
    h = x = b.input("images", TensorType(["N", 28, 28, 1]))
    cin = 1
    for i, cout in enumerate((32, 64, 128)):
        name = "conv2d" if i == 0 else f"conv2d_{i}"
        with b.location(name):
            k = b.param(f"{name}/kernel", _glorot(rng, (3, 3, cin, cout), 9 * cin, 9 * cout))
            h = b.relu(b.add(b.conv2d(h, k), b.param(f"{name}/bias", np.zeros(cout, np.float32))))
        if i < 2:
            with b.location(f"max_pooling2d_{i}"):
                h = b.max_pool2d(h, pool_size=(2, 2), strides=(2, 2))
        cin = cout
    with b.location("flatten"):
        h = b.reshape(h, shape=("N", 3 * 3 * 128))
    y = _dense(b, "dense", h, _glorot(rng, (1152, 10), 1152, 10), "softmax")
    return b.build([y], ["probs"])


def _dense(b, name, x, kernel, activation):
    with b.location(name):
        y = b.add(b.matmul(x, b.param(f"{name}/kernel", kernel)),
                  b.param(f"{name}/bias", np.zeros(kernel.shape[1], np.float32)))
        return b.relu(y) if activation == "relu" else b.softmax(y)


MODELS = {"mlp": (mlp_graph, (784,)), "convnet": (convnet_graph, (28, 28, 1))}


# -- runners: each returns fn(x) -> output array ----------------------------------------------
def kcompile_runner(graph, threads):
    """The front end: a kc.Sequential model with the graph's weights, through predict_on_batch."""
    import kcompile as kc
    model = _keras_model(kc, graph)
    run = lambda x: model.predict_on_batch(x)   # noqa: E731
    run.model = model
    return run


def kcompile_aot_runner(graph, threads):
    """The deployed path: an artifact written to disk, loaded with kcompile.runtime.load (ctypes)."""
    from kcompile.compiler.artifact import write_artifact
    from kcompile.runtime import load
    tmp = tempfile.mkdtemp(prefix="kcompile-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    model = load(write_artifact(graph, Path(tmp) / "artifact", graph.name))
    model.nthreads = threads
    run = lambda x: model.predict(x)   # noqa: E731
    run.artifact = model
    return run


def onnxruntime_runner(graph, threads):
    import onnxruntime as ort
    from kcompile.compiler.onnx_export import export_onnx
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(graph, Path(tmp) / "model.onnx")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = graph.inputs[0].name
    return lambda x: sess.run(None, {name: x})[0]


def reference_runner(graph, threads):
    from kcompile.runtime.reference import run
    return lambda x: run(graph, [x])[0]


def keras_jax_runner(graph, threads):
    import jax
    import keras
    model = _keras_model(keras, graph)
    call = jax.jit(lambda x: model(x, training=False))
    return lambda x: np.asarray(call(x).block_until_ready())


def torch_runner(graph, threads):
    import torch
    torch.set_num_threads(threads)
    model = _torch_model(torch, graph).eval()
    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


def _keras_model(keras, graph):
    L = keras.layers
    if graph.name == "mnist_mlp":
        layers = [keras.Input((784,)), L.Dense(512, activation="relu"), L.Dense(10, activation="softmax")]
    else:
        layers = [keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                  L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(128, 3, activation="relu"),
                  L.Flatten(), L.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.set_weights([graph.param_values[p.param_name] for p in graph.params])  # Keras order and layouts
    return model


def _torch_model(torch, graph):
    nn, w = torch.nn, graph.param_values
    if graph.name == "mnist_mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10), nn.Softmax(-1))
        dense = [model[0], model[2]]
        convs, names = [], ["dense", "dense_1"]
    else:  # NHWC input permuted to NCHW; flatten after permuting back so Dense weights match Keras
        convs = [nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3), nn.Conv2d(64, 128, 3)]
        dense = [nn.Linear(1152, 10)]
        model = _TorchConvnet(torch, convs, dense[0])
        names = ["dense"]
        for conv, name in zip(convs, ["conv2d", "conv2d_1", "conv2d_2"]):
            conv.weight.data = torch.from_numpy(w[f"{name}/kernel"].transpose(3, 2, 0, 1).copy())
            conv.bias.data = torch.from_numpy(w[f"{name}/bias"].copy())
    for layer, name in zip(dense, names):
        layer.weight.data = torch.from_numpy(w[f"{name}/kernel"].T.copy())
        layer.bias.data = torch.from_numpy(w[f"{name}/bias"].copy())
    return model


class _TorchConvnet:
    def __init__(self, torch, convs, dense):
        self.torch, self.convs, self.dense = torch, convs, dense

    def eval(self):
        return self

    def __call__(self, x):
        F = self.torch.nn.functional
        h = x.permute(0, 3, 1, 2)
        for i, conv in enumerate(self.convs):
            h = F.relu(conv(h))
            if i < 2:
                h = F.max_pool2d(h, 2)
        return F.softmax(self.dense(h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)), -1)


RUNNERS = {"kcompile": kcompile_runner, "kcompile-aot": kcompile_aot_runner, "onnxruntime": onnxruntime_runner,
           "reference": reference_runner, "keras-jax": keras_jax_runner, "torch": torch_runner}


# -- measurement ----------------------------------------------------------------------------
BURST = 5   # calls per runner per turn in the default rotation


def measure(runners: dict, x, budget: float, rotation: str = "burst") -> dict:
    """Per runner: (median s, best s, calls counted). Runners take turns, in a new random order every
    round, so that load from other processes on the machine falls on all of them alike (in a fixed
    order each runner would always follow the same peer and inherit its cache footprint).

    rotation "burst" (default): a turn is BURST calls, the first not counted, then a 2 ms pause: the
    steady state of a model called repeatedly, as a server sees it. The first call after another
    runtime pays for that runtime's cache footprint and for its idle workers, which spin for a
    while after each call (onnxruntime's and XLA's default) and hold the second core; the pause lets
    them go to sleep, so no runner's turn starts against another's spinning threads.
    rotation "call": a turn is one call, all counted: every call follows another runtime."""
    for fn in runners.values():
        fn(x)
        fn(x)  # warm-up: JIT compiles, allocations, thread pools
    burst, pause = (BURST, 0.002) if rotation == "burst" else (1, 0.0)
    times = {peer: [] for peer in runners}
    deadline = time.perf_counter() + budget * len(runners)
    rounds, order, rng = 0, list(runners.items()), random.Random(0)
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 2000):
        rng.shuffle(order)
        for peer, fn in order:
            for k in range(burst):
                t0 = time.perf_counter()
                fn(x)
                if k or burst == 1:
                    times[peer].append(time.perf_counter() - t0)
            if pause:
                time.sleep(pause)
        rounds += 1
    return {peer: (statistics.median(t), min(t), len(t)) for peer, t in times.items()}


def bench(args) -> list:
    rows = []
    for model_name in args.models.split(","):
        make, shape = MODELS[model_name]
        graph = make()
        runners = _build_runners(graph, args)
        for batch in map(int, args.batches.split(",")):
            x = np.random.default_rng(batch).random((batch, *shape), dtype=np.float32)
            want = reference_runner(graph, args.threads)(x)
            if batch == 1 and "kcompile" in runners and "kcompile-aot" in runners:
                overhead(runners, x, args.seconds * 3, args.threads)
            for peer, (median, best, n) in _measure_all(runners, x, args).items():
                err = float(np.abs(runners[peer](x) - want).max())
                rows.append((model_name, batch, peer, median, best, n, err))
                print(f"  measured {model_name:8} batch {batch:3} {peer:12} {median * 1e3:9.3f} ms ({n} calls)",
                      file=sys.stderr)
    return rows


def _measure_all(runners: dict, x, args) -> dict:
    """measure() over the runners; with several threads each runner alone, one after another (in a
    new random order per batch) with a pause between them. On 2 cores a runtime whose idle workers
    spin after each call holds a core for tens of milliseconds (onnxruntime's default, and XLA's
    pool for a while), so a runner taking turns with it runs its own threads on one free core: MLP
    batch 256, 2 threads, kcompile's median 2.22 ms beside a spinning onnxruntime, 0.96 ms beside one
    with allow_spinning=0 (whose own median did not change: 1.05 against 1.04 ms); with onnxruntime
    apart, kcompile's MLP batch-64 median was still 0.85 ms (best 0.26) taking turns with XLA and
    torch. Alone, each runtime keeps its own defaults (spinning included) and slows no one."""
    if args.threads == 1:
        return measure(runners, x, args.seconds, args.rotation)
    order = list(runners)
    random.Random(len(x)).shuffle(order)
    times = {}
    for peer in order:
        times[peer] = measure({peer: runners[peer]}, x, args.seconds, args.rotation)[peer]
        time.sleep(0.3)   # its workers' spinning winds down before the next runner's turn
    return {peer: times[peer] for peer in runners}


def _build_runners(graph, args) -> dict:
    runners = {}
    for peer in args.peers.split(","):
        try:
            runners[peer] = RUNNERS[peer](graph, args.threads)
        except ImportError as e:
            print(f"  skipping {peer}: {e}", file=sys.stderr)
    return runners


def ratio_to_ort(rows) -> dict:
    """(model, batch, runner) -> the runner's median time over onnxruntime's."""
    ort = {(m, b): med for m, b, p, med, *_ in rows if p == "onnxruntime"}
    return {(m, b, p): med / ort[(m, b)] for m, b, p, med, *_ in rows if (m, b) in ort}


def print_table(rows, threads: int, rotation: str):
    from bench_machine import machine_line
    print(f"\n{machine_line(threads)}  ({os.cpu_count()} CPUs; the thread count is kcompile's nthreads, "
          "onnxruntime's intra_op_num_threads, XLA's and torch's settings)")
    print(f"rotation: {rotation} ({'bursts of %d calls, the first not counted' % BURST if rotation == 'burst' else 'call by call'})")
    print(f"{'model':8} {'batch':>5}  {'runner':12} {'median ms':>10} {'best ms':>9} {'t / t_ORT':>9} {'max|diff|':>9}")
    ratios = ratio_to_ort(rows)
    for m, b, p, med, best, n, err in rows:
        ratio = f"{ratios[(m, b, p)]:.2f}" if (m, b, p) in ratios else "-"
        print(f"{m:8} {b:5}  {p:12} {med * 1e3:10.3f} {best * 1e3:9.3f} {ratio:>9} {err:9.1e}")
    print("t / t_ORT: the runner's median time divided by onnxruntime's (below 1: faster than onnxruntime); "
          "kcompile = predict_on_batch (front end, JIT), kcompile-aot = runtime.load(artifact).predict")


def print_ratio_bars(rows, threads: int):
    ratios = ratio_to_ort(rows)
    for (m, b, p), r in ratios.items():
        if p not in ("kcompile", "kcompile-aot") or (b != 1 and b < 64):
            continue
        goal = 0.9 if b == 1 else 1.0
        path = "predict_on_batch" if p == "kcompile" else "artifact predict"
        print(f"bar: {m} batch {b} {path}, {threads} thread(s): kcompile time / ORT time {r:.2f} <= {goal} "
              f"{'met' if r <= goal else 'NOT met'}")


# -- call-path overhead at batch 1 ------------------------------------------------------------
def overhead(runners, x, budget: float, threads: int):
    """Each Python path's median minus its native entry's own median time.

    The entry is timed one call at a time inside native code (bench/native_loop.py: the time-stamp
    counter read before and after the call), and those calls alternate with the Python calls round
    by round, in an order that rotates, so that the machine's load and the caches' state fall on all
    alike."""
    from native_loop import one_call_seconds
    model, artifact = runners["kcompile"].model, runners["kcompile-aot"].artifact
    paths = {"predict_on_batch": (lambda: model.predict_on_batch(x), "jit"),
             "predict(verbose=0)": (lambda: model.predict(x, verbose=0), "jit"),
             "artifact.predict": (lambda: artifact.predict(x), "aot"),
             "artifact(x)": (lambda: artifact(x), "aot")}
    for fn, _ in list(paths.values()) * 3:
        fn()
    handles = {"jit": model._prepared_predict.plan.native_call([x]), "aot": artifact._forward_plan().native_call([x])}
    native = {k: [] for k in handles}
    python = {k: [] for k in paths}
    deadline = time.perf_counter() + budget
    names, entries, turn = list(paths), list(handles), 0
    while time.perf_counter() < deadline or len(native["jit"]) < 50:
        # the order rotates round by round: the path right after the other code's native call (the AOT
        # library's after the JIT's, or the reverse) finds its code and weights evicted from L1, ~1 us,
        # which the fixed order charged to predict_on_batch alone (5.1 us against 4.0 for predict)
        for k in entries[turn % 2:] + entries[:turn % 2]:
            fn, addr, _keep = handles[k]
            native[k].append(one_call_seconds(fn, addr))
        for k in names[turn % len(names):] + names[:turn % len(names)]:
            fn = paths[k][0]
            t0 = time.perf_counter()
            fn()
            python[k].append(time.perf_counter() - t0)
        turn += 1
    native = {k: statistics.median(v) for k, v in native.items()}
    print(f"  call path, batch 1, {threads} thread(s)        median us   native entry us   overhead us"
          f"   ({len(python['artifact(x)'])} rounds)")
    for k, (_, which) in paths.items():
        med = statistics.median(python[k])
        over = (med - native[which]) * 1e6
        print(f"  {k:28} {med * 1e6:12.1f} {native[which] * 1e6:17.1f} {over:13.1f}")
        print(f"bar: overhead <= 5 us ({k}, {threads} thread(s)): {over:.1f} us {'met' if over <= 5 else 'NOT met'}")
    print(f"  {'C entry point (artifact)':28} {native['aot'] * 1e6:12.1f} {native['aot'] * 1e6:17.1f} {0.0:13.1f}"
          "   (called from native code: it is the baseline; nothing runs around it)")


# -- GEMM-bound layers against the FMA peak ----------------------------------------------------
def _layer_graph(kind: str, dims: tuple):
    from kcompile.ir import GraphBuilder, TensorType
    rng = np.random.default_rng(1)
    b = GraphBuilder(f"layer_{kind}")
    if kind == "dense":
        k, n = dims
        x = b.input("x", TensorType(["N", k]))
        w = b.param("kernel", rng.standard_normal((k, n)).astype(np.float32))
        y = b.relu(b.add(b.matmul(x, w), b.param("bias", np.zeros(n, np.float32))))
    else:
        hw, cin, cout = dims
        x = b.input("x", TensorType(["N", hw, hw, cin]))
        w = b.param("kernel", rng.standard_normal((3, 3, cin, cout)).astype(np.float32))
        y = b.relu(b.add(b.conv2d(x, w), b.param("bias", np.zeros(cout, np.float32))))
    return b.build([y], ["y"])


# (name, kind, dims, flops per batch row): the layers whose GEMM has K and N of 64 or more
GEMM_LAYERS = {
    "mlp": [("dense 784->512 +relu", "dense", (784, 512), 2 * 784 * 512)],
    "convnet": [("conv2d_1 13x13x32->64 +relu", "conv", (13, 32, 64), 2 * 11 * 11 * 9 * 32 * 64),
                ("conv2d_2 5x5x64->128 +relu", "conv", (5, 64, 128), 2 * 3 * 3 * 9 * 64 * 128)],
}


def layer_peak(models, batches, threads: int, seconds: float = 0.5):
    from fma_peak import measure as measure_peak
    from native_loop import one_call_seconds
    from kcompile.compiler.jit import compile_graph
    peak = measure_peak()
    print(f"\nFMA peak: {peak.describe()}; {threads} thread(s): {peak.flops(threads) / 1e9:.0f} GFLOP/s")
    for model in models:
        for name, kind, dims, flops in GEMM_LAYERS.get(model, []):
            graph = _layer_graph(kind, dims)
            plan = compile_graph(graph).plan(nthreads=threads)
            for batch in [b for b in batches if b >= 64]:
                x = np.random.default_rng(0).random((batch, *graph.inputs[0].type.shape[1:]), dtype=np.float32)
                fn, args, keep = plan.native_call([x])
                samples = [one_call_seconds(fn, args) for _ in range(3)]
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline or len(samples) < 10:
                    samples.append(one_call_seconds(fn, args))
                best, med = min(samples), statistics.median(samples)
                frac, frac_med = (flops * batch / t / peak.flops(threads) for t in (best, med))
                print(f"  {model:8} {name:30} batch {batch:4}: best {best * 1e6:9.1f} us "
                      f"{flops * batch / best / 1e9:6.1f} GFLOP/s = {frac * 100:5.1f} % of peak "
                      f"(median of {len(samples)}: {frac_med * 100:5.1f} %)")
                print(f"bar: {model} {name} batch {batch}, {threads} thread(s): {frac * 100:.1f} % of FMA peak (best call) "
                      f">= 95 % {'met' if frac >= 0.95 else 'NOT met'}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    counts = [int(t) for t in str(args.threads).split(",")]
    if len(counts) > 1:   # one child per thread count: XLA and BLAS fix theirs at import
        for t in counts:
            sys.stdout.flush()
            subprocess.run([sys.executable, __file__, *argv, "--threads", str(t)], check=True)
        return
    threads = counts[0]
    pin_threads(threads)
    try:  # NumPy's BLAS (the reference interpreter's matmuls) gets the same thread count
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=threads)
    except ImportError:
        print("  threadpoolctl is missing: NumPy's BLAS uses its default thread count", file=sys.stderr)
    args.threads = threads
    if not args.layers_only:
        rows = bench(args)
        print_table(rows, threads, args.rotation)
        print_ratio_bars(rows, threads)
    if not args.skip_layers:
        layer_peak(args.models.split(","), [int(b) for b in args.batches.split(",")], threads, args.layer_seconds)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))   # bench_machine, native_loop, fma_peak
    main()
