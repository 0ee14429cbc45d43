"""Benchmark: MNIST test accuracy of the book's MLP (784-512-10, Adam, 3 epochs, batch 128), dense
vs pruned with kc.pruning (PolynomialDecay 0 -> 90%, and 2:4), same seed and recipe; plus the
median training-step time of each (the masks cost one multiply per weight in the compiled step).

Run: python bench/bench_pruning_accuracy.py [--seeds 0 1] [--save /tmp/kcompile_mnist_pruned90.keras]
The pruned-then-stripped 90% model of the first seed is saved (plain Dense layers, zeros in place),
ready for a latency benchmark. Prints figures; not a test.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import kcompile as kc

MNIST = os.environ.get("KCOMPILE_MNIST_DIR", "/work/shared/data/mnist")
EPOCHS, BATCH = 3, 128


def data():
    (x, y), (xt, yt) = kc.datasets.mnist.load_data(MNIST)
    prep = lambda a: a.reshape(len(a), 784).astype("float32") / 255.0   # noqa: E731
    return prep(x), y.astype("int32"), prep(xt), yt.astype("int32")


def mlp():
    return kc.Sequential([kc.Input((784,)), kc.layers.Dense(512, activation="relu"),
                          kc.layers.Dense(10, activation="softmax")])


class StepTimer(kc.callbacks.Callback):
    """Wall time of each training batch (callback hooks included)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times = getattr(self, "times", []) + [time.perf_counter() - self.t]


def train(kind, seed, x, y, xt, yt):
    kc.utils.set_random_seed(seed)
    model, callbacks = mlp(), []
    steps = EPOCHS * -(-len(x) // BATCH)
    if kind == "poly90":
        end = (2 * steps // 3) // 100 * 100          # reach 90% after two thirds, fine-tune the rest
        model = kc.pruning.prune_low_magnitude(
            model, pruning_schedule=kc.pruning.PolynomialDecay(0.0, 0.9, begin_step=0, end_step=end))
    elif kind == "2:4":
        model = kc.pruning.prune_low_magnitude(model, sparsity_m_by_n=(2, 4))
    if kind != "dense":
        callbacks.append(kc.pruning.UpdatePruningStep())
    timer = StepTimer()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=callbacks + [timer])
    if kind != "dense":
        model = kc.pruning.strip_pruning(model)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    acc = model.evaluate(xt, yt, batch_size=1000, verbose=0, return_dict=True)["accuracy"]
    zeros = [float(np.mean(w == 0)) for w in model.get_weights()[::2]]
    return model, 100 * acc, zeros, float(np.median(timer.times[10:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--save", default="/tmp/kcompile_mnist_pruned90.keras")
    args = ap.parse_args()
    x, y, xt, yt = data()
    results = {}
    for seed in args.seeds:
        for kind in ("dense", "poly90", "2:4"):
            model, acc, zeros, step = train(kind, seed, x, y, xt, yt)
            results.setdefault(kind, []).append(acc)
            print(f"seed {seed} {kind:7s} test accuracy {acc:6.2f}%  kernel zeros {[round(z, 3) for z in zeros]}  "
                  f"median train step {1e3 * step:.2f} ms", flush=True)
            if kind == "poly90" and seed == args.seeds[0] and args.save:
                model.save(args.save)
                print(f"  saved the stripped 90%-sparse model to {args.save}")
            if kind == "dense" and seed == args.seeds[0] and args.save:
                dense_path = args.save.replace(".keras", "_dense.keras")
                model.save(dense_path)
                print(f"  saved the dense model to {dense_path}")
    dense = np.mean(results["dense"])
    for kind, accs in results.items():
        print(f"{kind:7s} mean {np.mean(accs):6.2f}%  (minus dense: {np.mean(accs) - dense:+.2f} points)")


if __name__ == "__main__":
    main()
