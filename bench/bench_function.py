"""The book's chapter 7 custom loop on the MNIST MLP: kc.function step and eager step vs fit, per step.

Prints median milliseconds per step (after warm-up; compile time excluded) at batch 32 and 128, and
the ratios the issue sets bars for: decorated step / fit <= 1.1, eager step / fit <= 3. fit's step is
timed two ways: train_on_batch interleaved with the other runners step by step (fair under load),
and fit() over an epoch of the same batches (its own loop, callbacks and metrics included).
Run: python bench/bench_function.py [--steps 60] [--batches 32,128]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
os.environ.setdefault("KCOMPILE_TIER_UP", "0")   # time the optimized code from the first call (compiler/tier_up.py)

# one thread everywhere, as kcompile's per-call default: NumPy's BLAS threads (the eager loop's small
# matmuls) would otherwise spin on the second core after each call and slow whichever runner is next
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, os.environ.get("KCOMPILE_NUM_THREADS", "1"))


import kcompile as kc  # noqa: E402
from kcompile import layers  # noqa: E402


def mnist_model():
    inputs = kc.Input(shape=(28 * 28,))
    features = layers.Dense(512, activation="relu")(inputs)
    features = layers.Dropout(0.5)(features)
    outputs = layers.Dense(10, activation="softmax")(features)
    return kc.Model(inputs, outputs)


def book_train_step(model):
    """Listing 7.4.3's train_step (metrics, loss tracker, RMSprop)."""
    loss_fn = kc.losses.SparseCategoricalCrossentropy()
    optimizer = kc.optimizers.RMSprop()
    metrics = [kc.metrics.SparseCategoricalAccuracy()]
    loss_tracking_metric = kc.metrics.Mean()

    def train_step(inputs, targets):
        with kc.GradientTape() as tape:
            predictions = model(inputs, training=True)
            loss = loss_fn(targets, predictions)
        gradients = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        logs = {}
        for metric in metrics:
            metric.update_state(targets, predictions)
            logs[metric.name] = metric.result()
        loss_tracking_metric.update_state(loss)
        logs["loss"] = loss_tracking_metric.result()
        return logs
    return train_step


def per_step(runners: dict, batches, warmup=3, rounds=3) -> dict:
    """Median ms per step of each runner, interleaved step by step so machine load hits all alike;
    the best of a few rounds, as load on a shared machine comes in bursts."""
    for xb, yb in batches[:warmup]:
        for run in runners.values():
            run(xb, yb)
    best = {name: float("inf") for name in runners}
    for _ in range(rounds):
        times = {name: [] for name in runners}
        for xb, yb in batches[warmup:]:
            for name, run in runners.items():
                t0 = time.perf_counter()
                run(xb, yb)
                times[name].append(time.perf_counter() - t0)
        best = {name: min(best[name], statistics.median(t) * 1e3) for name, t in times.items()}
    return best


def fit_epoch_per_step(model, x, y, batch_size, repeats=3) -> float:
    """fit()'s own per-step time: one epoch over the same batches, the best of a few epochs."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        times.append((time.perf_counter() - t0) / (len(x) // batch_size))
    return min(times) * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batches", default="32,128")
    args = p.parse_args()
    (x, y), _ = kc.datasets.mnist.load_data(path=os.environ.get("KCOMPILE_MNIST_DIR", "/work/shared/data/mnist"))
    x = x.reshape(-1, 784).astype("float32") / 255
    threads = os.environ.get("KCOMPILE_NUM_THREADS", "1")
    from kcompile.compiler.target import host_target
    t = host_target()
    print(f"kcompile threads per call: {threads}; steps timed: {args.steps}; CPU {t.cpu}, {t.vector_bits}-bit vectors, "
          f"AVX-512 {'+avx512f' in t.features}; load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for bs in [int(b) for b in args.batches.split(",")]:
        batches = [(x[i * bs:(i + 1) * bs], y[i * bs:(i + 1) * bs]) for i in range(args.steps + 3)]
        fit_model = mnist_model()
        fit_model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        ms = per_step({"fit": lambda xb, yb: fit_model.train_on_batch(xb, yb),
                       "function": kc.function(book_train_step(mnist_model())),
                       "eager": book_train_step(mnist_model())}, batches)
        fit_ms, fn_ms, eager_ms = ms["fit"], ms["function"], ms["eager"]
        epoch_ms = fit_epoch_per_step(fit_model, x[:args.steps * bs], y[:args.steps * bs], bs)
        print(f"batch {bs:4d}: fit() over an epoch {epoch_ms:7.2f} ms/step; kc.function {fn_ms / epoch_ms:.2f}x, "
              f"eager {eager_ms / epoch_ms:.2f}x of it")
        print(f"batch {bs:4d}: train_on_batch {fit_ms:7.2f} ms/step | kc.function {fn_ms:7.2f} ms ({fn_ms / fit_ms:.2f}x, bar 1.1x)"
              f" | eager {eager_ms:7.2f} ms ({eager_ms / fit_ms:.2f}x, bar 3x)")


if __name__ == "__main__":
    main()
