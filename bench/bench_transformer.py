"""Transformer text classifier (embedding 64, 2 heads, sequence 128, batch 32): kcompile native vs
Keras 3 on JAX, side by side, on the same weights.

The model is examples/transformer_text_classifier.py's (token + position embedding, one encoder
block, pooling, two dense layers), built once with kcompile and once with Keras. Timed: inference
(kcompile's compiled forward function vs a jax.jit of the Keras model) and one training step
(train_on_batch with Adam on both: the public API, optimizer update included). Runners take turns
in bursts of 5 calls, the first not counted (bench_models.measure), so machine load falls on both alike. Prints medians, best times, ratios, the max abs
difference of the predictions from Keras's, and of onnxruntime on the exported model from kcompile's,
and a `bar:` line per target.

    python bench/bench_transformer.py [--threads 1] [--seconds 3] [--vocab 20000] [--no-pin]

--threads N also pins the process to N of its CPUs (before XLA starts): XLA:CPU runs independent
ops (the Q, K and V projections, ...) side by side on its own thread pool whatever its flags say, so
unpinned its "1 thread" used up to 2 cores of a quiet 2-core machine. The cpu/wall column shows the
cores each runner kept busy; --no-pin measures the old way.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from bench_models import measure, pin_threads  # noqa: E402  (same thread pinning and turn-taking timer)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for kcompile, XLA and onnxruntime")
    p.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--maxlen", type=int, default=128)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--ff", type=int, default=64)
    p.add_argument("--vocab", type=int, default=20000)
    p.add_argument("--no-pin", dest="pin", action="store_false", help="leave the process on all its CPUs")
    return p.parse_args(argv)


def build_pair(args):
    import keras
    import transformer_text_classifier as ex

    import kcompile as kc
    kw = dict(maxlen=args.maxlen, vocab=args.vocab, embed_dim=args.embed, num_heads=args.heads, ff_dim=args.ff)
    ours, theirs = ex.build_model(kc, **kw), ex.build_model(keras, **kw)
    theirs.set_weights(ours.get_weights())
    for model, lib in ((ours, kc), (theirs, keras)):
        model.compile(lib.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return ours, theirs


def onnx_diff(model, x, ours) -> float:
    import onnxruntime as ort

    from kcompile.compiler.onnx_export import export_onnx
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model.forward_graph(), Path(tmp) / "transformer.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ["KCOMPILE_NUM_THREADS"])
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return float(np.abs(got - ours).max())


def pin_cpus(threads: int) -> list:
    """Keep this process (and the threads it starts from now on: XLA's pool) on `threads` CPUs."""
    cpus = sorted(os.sched_getaffinity(0))[:max(1, threads)]
    os.sched_setaffinity(0, cpus)
    return cpus


def cpu_per_wall(fn, x, calls: int = 20) -> float:
    """Process CPU seconds per wall second over `calls` calls: the cores a runner kept busy."""
    fn(x)
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn(x)
    return (time.process_time() - c0) / (time.perf_counter() - t0)


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)
    pinned = pin_cpus(args.threads) if args.pin and hasattr(os, "sched_setaffinity") else None
    import jax

    from kcompile.compiler.jit import compile_graph
    from kcompile.compiler.target import host_target

    ours, theirs = build_pair(args)
    rng = np.random.default_rng(0)
    x = rng.integers(0, args.vocab, (args.batch, args.maxlen)).astype(np.int32)
    y = rng.integers(0, 2, (args.batch,)).astype(np.int32)

    forward = compile_graph(ours.forward_graph())
    keras_call = jax.jit(lambda t: theirs(t, training=False))
    kc_probs = forward([x], nthreads=args.threads)[0]
    keras_diff = float(np.abs(kc_probs - np.asarray(keras_call(x))).max())
    try:  # before training: the export takes the weights as they are now
        onnx_max = onnx_diff(ours, x, kc_probs)
        onnx_line = f"max|onnxruntime - kcompile| predictions: {onnx_max:.1e}"
    except ImportError:
        onnx_max, onnx_line = None, "onnxruntime is not installed: no ONNX comparison"
    infer_runners = {"kcompile": lambda t: forward([t], nthreads=args.threads),
                     "keras-jax": lambda t: keras_call(t).block_until_ready()}
    infer = measure(infer_runners, x, args.seconds)
    cores = {name: cpu_per_wall(fn, x) for name, fn in infer_runners.items()}
    train = measure({"kcompile": lambda t: ours.train_on_batch(t, y),
                     "keras-jax": lambda t: theirs.train_on_batch(t, y)}, x, args.seconds)

    target = host_target()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"threads: {args.threads}  cpu: {target.cpu}  features: "
          f"{','.join(f for f in target.enabled_features if f.startswith('avx'))}  load average {load:.1f}  "
          f"{f'pinned to CPUs {pinned}' if pinned else 'not pinned'}")
    print(f"model: embedding {args.embed}, {args.heads} heads, sequence {args.maxlen}, ff {args.ff}, "
          f"vocab {args.vocab}, batch {args.batch}")
    print(f"{'step':10} {'runner':10} {'median ms':>10} {'best ms':>9} {'calls':>6} {'keras/kc':>9} {'cpu/wall':>9}")
    for step, res in (("inference", infer), ("train", train)):
        for name, (med, best, n) in res.items():
            ratio = f"{res['keras-jax'][0] / res['kcompile'][0]:.2f}" if name == "kcompile" else ""
            busy = f"{cores[name]:.2f}" if step == "inference" else ""
            print(f"{step:10} {name:10} {med * 1e3:10.3f} {best * 1e3:9.3f} {n:6d} {ratio:>9} {busy:>9}")
    print("keras/kc: Keras-JAX median over kcompile's (above 1: kcompile is faster)")
    print(f"max|kcompile - keras| predictions: {keras_diff:.1e}")
    print(onnx_line)
    for step, res in (("inference", infer), ("train", train)):
        ratio = res["keras-jax"][0] / res["kcompile"][0]
        print(f"bar: {step} at batch {args.batch} no slower than Keras-JAX (keras/kc >= 1): {ratio:.2f}x "
              f"{'met' if ratio >= 1.0 else 'NOT met'}")
    if onnx_max is not None:
        print(f"bar: ONNX within 1e-5 of kcompile: {onnx_max:.1e} {'met' if onnx_max <= 1e-5 else 'NOT met'}")


if __name__ == "__main__":
    main()
