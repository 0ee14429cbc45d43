"""BiLSTM text classifier at batch 32: kcompile native vs Keras 3 on JAX, inference and a training step.

Embedding(vocab, 64[, mask_zero]) -> Bidirectional(LSTM(64)) -> Dense(1, sigmoid), the same weights
in both. Inference: kcompile's JIT-compiled forward function vs a jax.jit'd Keras call. Training:
`train_on_batch` (Adam, binary cross-entropy) on both, each after a warm-up call. The runners take
turns in bursts of 5 calls, the first not counted (bench_models.measure), so machine load falls on both alike. Prints medians, ratios (Keras / kcompile:
> 1 means kcompile is faster), the max abs difference of kcompile's predictions from Keras's and
from the exported ONNX model run by onnxruntime, a `bar:` line per target, the thread count, the
CPU features and the machine's load.

    python bench/bench_bilstm.py [--steps 100] [--seconds 3] [--threads 1] [--mask]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_models import measure, pin_threads  # (bench/: same thread pinning and turn-taking timer)
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100, help="sequence length (tokens)")
    p.add_argument("--vocab", type=int, default=20000)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    p.add_argument("--mask", action="store_true", help="Embedding(mask_zero=True) and padded sequences")
    return p.parse_args(argv)


def build(M, args):
    inp = M.Input(shape=(args.steps,), dtype="int32")
    x = M.layers.Embedding(args.vocab, args.embed, mask_zero=args.mask)(inp)
    x = M.layers.Bidirectional(M.layers.LSTM(args.units))(x)
    return M.Model(inp, M.layers.Dense(1, activation="sigmoid")(x))


def data(args, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, args.vocab, (args.batch, args.steps)).astype(np.int32)
    if args.mask:   # right-padded sequences of random lengths
        lengths = rng.integers(args.steps // 4, args.steps + 1, args.batch)
        tokens[np.arange(args.steps)[None, :] >= lengths[:, None]] = 0
    labels = rng.integers(0, 2, (args.batch, 1)).astype(np.float32)
    return tokens, labels


def cpu_times(pair, rounds: int) -> tuple:
    """Median process (CPU) time per call of each of two runners, taking turns: under load, wall time
    includes waiting for a core, CPU time does not (all threads counted, so a multi-threaded peer pays
    for its helpers too)."""
    times = ([], [])
    for _ in range(rounds):
        for fn, out in zip(pair, times):
            t0 = time.process_time()
            fn()
            out.append(time.process_time() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)
    import jax
    import keras
    import onnxruntime as ort

    import kcompile as kc
    from kcompile.compiler.jit import compile_graph
    from kcompile.compiler.onnx_export import export_onnx
    from bench_machine import machine_line

    kc.utils.set_random_seed(0)
    ours, theirs = build(kc, args), build(keras, args)
    theirs.set_weights(ours.get_weights())
    tokens, labels = data(args)

    graph = ours.forward_graph()
    forward = compile_graph(graph)
    keras_call = jax.jit(lambda x: theirs(x, training=False))
    ours_pred = forward([tokens], nthreads=args.threads)[0]
    keras_pred = np.asarray(keras_call(tokens))
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(export_onnx(graph, Path(tmp) / "bilstm.onnx")), opts,
                                    providers=["CPUExecutionProvider"])
        onnx_pred = sess.run(None, {graph.inputs[0].name: tokens})[0]
    infer = measure({"kcompile": lambda t: forward([t], nthreads=args.threads),
                     "keras-jax": lambda t: keras_call(t).block_until_ready()}, tokens, args.seconds)

    # one training step (Adam, binary cross-entropy) through the public API, optimizer update included
    ours.compile(kc.optimizers.Adam(1e-3), "binary_crossentropy", backend="native")
    theirs.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    loss_ours = float(np.asarray(ours.train_on_batch(tokens, labels)).ravel()[0])
    loss_keras = float(np.asarray(theirs.train_on_batch(tokens, labels)).ravel()[0])
    train = measure({"kcompile": lambda t: ours.train_on_batch(t, labels),
                     "keras-jax": lambda t: theirs.train_on_batch(t, labels)}, tokens, args.seconds)

    cpu = {"inference": cpu_times((lambda: forward([tokens], nthreads=args.threads),
                                   lambda: keras_call(tokens).block_until_ready()), 40),
           "train": cpu_times((lambda: ours.train_on_batch(tokens, labels),
                               lambda: theirs.train_on_batch(tokens, labels)), 12)}

    print(machine_line(args.threads))
    print(f"model: Embedding({args.vocab}, {args.embed}, mask_zero={args.mask}) -> Bidirectional(LSTM({args.units}))"
          f" -> Dense(1, sigmoid); batch {args.batch}, {args.steps} steps")
    print(f"{'step':10} {'runner':10} {'median ms':>10} {'best ms':>9} {'calls':>6} {'keras/kc':>9}")
    ratios = {}
    for step, res in (("inference", infer), ("train", train)):
        ratios[step] = res["keras-jax"][0] / res["kcompile"][0]
        for name, (med, best, n) in res.items():
            ratio = f"{ratios[step]:.2f}" if name == "kcompile" else ""
            print(f"{step:10} {name:10} {med * 1e3:10.3f} {best * 1e3:9.3f} {n:6d} {ratio:>9}")
    print("keras/kc: Keras-JAX median over kcompile's (above 1: kcompile is faster)")
    print(f"first-step loss: kcompile {loss_ours:.6f}  keras {loss_keras:.6f}")
    onnx_diff = float(np.abs(onnx_pred - ours_pred).max())
    print(f"max |kcompile - keras| = {np.abs(ours_pred - keras_pred).max():.2e}   "
          f"max |onnxruntime - kcompile| = {onnx_diff:.2e}")
    for step, (ours_cpu, keras_cpu) in cpu.items():
        print(f"cpu time {step:9}: kcompile {ours_cpu * 1e3:8.3f} ms  keras-jax {keras_cpu * 1e3:8.3f} ms  "
              f"keras/kc {keras_cpu / ours_cpu:.2f} (process time per call, medians: what a loaded machine "
              "cannot stretch)")
    for step in ("inference", "train"):
        print(f"bar: {step} at batch {args.batch} no slower than Keras-JAX (keras/kc >= 1): "
              f"{ratios[step]:.2f}x {'met' if ratios[step] >= 1.0 else 'NOT met'} (wall); cpu time "
              f"{cpu[step][1] / cpu[step][0]:.2f}x {'met' if cpu[step][1] >= cpu[step][0] else 'NOT met'}")
    print(f"bar: ONNX within 1e-5 of kcompile: {onnx_diff:.1e} {'met' if onnx_diff <= 1e-5 else 'NOT met'}")


if __name__ == "__main__":
    main()
