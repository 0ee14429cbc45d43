"""Inference benchmark: the book's MNIST MLP and convnet at batch 1 and 64.

kcompile native code (in-process JIT, and an AOT artifact loaded with kcompile.runtime.load) vs
onnxruntime (CPU, same thread count) vs the NumPy reference interpreter,
and Keras 3 on JAX or PyTorch when installed, all in this one process. Prints per-call medians
(and best times), ratios to kcompile, every runner's max abs difference from the reference, the
thread count and the machine's load.

    python bench/bench_models.py [--threads T] [--seconds S] [--models mlp,convnet] [--batches 1,64]
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every runner")
    p.add_argument("--seconds", type=float, default=1.0, help="time budget per (model, batch, runner)")
    p.add_argument("--models", default="mlp,convnet")
    p.add_argument("--batches", default="1,64")
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
    from kcompile.compiler.jit import compile_graph
    fn = compile_graph(graph)
    return lambda x: fn([x], nthreads=threads)[0]


def kcompile_aot_runner(graph, threads):
    """The deployed path: an artifact written to disk, loaded with kcompile.runtime.load (ctypes)."""
    from kcompile.compiler.artifact import write_artifact
    from kcompile.runtime import load
    tmp = tempfile.mkdtemp(prefix="kcompile-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    model = load(write_artifact(graph, Path(tmp) / "artifact", graph.name))
    model.nthreads = threads
    return lambda x: model.predict(x)


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
def measure(runners: dict, x, budget: float) -> dict:
    """Per runner: (median s, best s, calls). Runners take turns call by call, so that load from
    other processes on the machine falls on all of them alike."""
    for fn in runners.values():
        fn(x)
        fn(x)  # warm-up: JIT compiles, allocations, thread pools
    times = {peer: [] for peer in runners}
    deadline = time.perf_counter() + budget * len(runners)
    rounds = 0
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 2000):
        for peer, fn in runners.items():
            t0 = time.perf_counter()
            fn(x)
            times[peer].append(time.perf_counter() - t0)
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
            for peer, (median, best, n) in measure(runners, x, args.seconds).items():
                err = float(np.abs(runners[peer](x) - want).max())
                rows.append((model_name, batch, peer, median, best, n, err))
                print(f"  measured {model_name:8} batch {batch:3} {peer:12} {median * 1e3:9.3f} ms ({n} calls)",
                      file=sys.stderr)
    return rows


def _build_runners(graph, args) -> dict:
    runners = {}
    for peer in args.peers.split(","):
        try:
            runners[peer] = RUNNERS[peer](graph, args.threads)
        except ImportError as e:
            print(f"  skipping {peer}: {e}", file=sys.stderr)
    return runners


def print_table(rows, threads: int):
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nthreads: {threads} (kcompile nthreads, onnxruntime intra_op_num_threads, XLA/torch settings); "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"{'model':8} {'batch':>5}  {'runner':12} {'median ms':>10} {'best ms':>9} {'median/kc':>9} {'max|diff|':>9}")
    base = {(m, b): med for m, b, p, med, *_ in rows if p == "kcompile"}
    for m, b, p, med, best, n, err in rows:
        ratio = f"{med / base[(m, b)]:.2f}" if (m, b) in base else "-"
        print(f"{m:8} {b:5}  {p:12} {med * 1e3:10.3f} {best * 1e3:9.3f} {ratio:>9} {err:9.1e}")
    print("median/kc: the runner's median time over kcompile's (above 1: kcompile is faster)")


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)
    try:  # NumPy's BLAS (the reference interpreter's matmuls) gets the same thread count
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=args.threads)
    except ImportError:
        print("  threadpoolctl is missing: NumPy's BLAS uses its default thread count", file=sys.stderr)
    print_table(bench(args), args.threads)


if __name__ == "__main__":
    main()
