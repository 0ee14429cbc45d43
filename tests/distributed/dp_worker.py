"""Run under `mpiexec -n 2` by test_two_processes.py: one scenario per call, results in OUTDIR.

  train     data-parallel fits (uneven last batch, a global batch of 1, sample weights, an L2
            regularizer, Adam), then rank 0 repeats them in one process from the same initial
            weights; a BatchNormalization model trained with shuffle=True, and a synchronized one
            repeated in one process too; CSVLogger on each rank
  mismatch  rank 1 builds a different model: both ranks must report it (no hang)
  hang      rank 1 stops calling collectives mid-epoch: rank 0 must time out with a clear error
  dies      rank 1 exits mid-epoch: the job must end (not hang)
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

import kcompile as kc
from kcompile import distribution

SCENARIO, OUT = sys.argv[1], sys.argv[2]


def data(n=37, features=6):
    rs = np.random.RandomState(0)
    return rs.randn(n, features).astype("f4"), rs.randint(0, 3, n), rs.uniform(0.5, 2.0, n).astype("f4")


def classifier(hidden=8):
    model = kc.Sequential([kc.Input((6,)),
                           kc.layers.Dense(hidden, activation="relu", kernel_regularizer=kc.regularizers.L2(0.01)),
                           kc.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=kc.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fits(model, x, y, sw, callbacks=()):
    h1 = model.fit(x, y, sample_weight=sw, batch_size=8, epochs=2, shuffle=False, verbose=0,
                   callbacks=list(callbacks)).history
    h2 = model.fit(x, y, sample_weight=sw, batch_size=1, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0).history
    return {f"first_{k}": v for k, v in h1.items()} | {f"tiny_{k}": v for k, v in h2.items()}


def train(world):
    x, y, sw = data()
    model = classifier()
    initial = [w.copy() for w in model.get_weights()]
    if world.rank == 1:   # rank 0's weights must win the broadcast
        model.set_weights([w + 1.0 for w in initial])
    distribution.set_distribution(distribution.DataParallel())
    history = fits(model, x, y, sw, [kc.callbacks.CSVLogger(os.path.join(OUT, f"log_rank{world.rank}.csv"))])
    weights = model.get_weights()

    bn = batch_norm_model(synchronized=False, backend="reference")
    np.random.seed(world.rank)   # different NumPy RNGs: the batch order must still be rank 0's
    bn.fit(x, y.astype("f4"), batch_size=8, epochs=1, shuffle=True, verbose=0)
    np.savez(os.path.join(OUT, f"bn_rank{world.rank}.npz"), *bn.get_weights())
    np.savez(os.path.join(OUT, f"dp_rank{world.rank}.npz"), *weights, history=repr(history))

    synced = batch_norm_model(synchronized=True)   # statistics over the global batch, natively
    sync_initial = [w.copy() for w in synced.get_weights()]
    sync_history = synced.fit(x, y.astype("f4"), batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.savez(os.path.join(OUT, f"sync_rank{world.rank}.npz"), *synced.get_weights(), history=repr(sync_history))

    if world.rank == 0:   # the same training in one process, the same global batches
        distribution.set_distribution(None)
        single = classifier()
        single.set_weights(initial)
        history = fits(single, x, y, sw)
        np.savez(os.path.join(OUT, "single.npz"), *single.get_weights(), history=repr(history))
        single = batch_norm_model(synchronized=True, backend="reference")
        single.set_weights(sync_initial)
        history = single.fit(x, y.astype("f4"), batch_size=8, epochs=1, shuffle=False, verbose=0).history
        np.savez(os.path.join(OUT, "sync_single.npz"), *single.get_weights(), history=repr(history))


def batch_norm_model(synchronized, backend=None):
    model = kc.Sequential([kc.Input((6,)), kc.layers.Dense(4), kc.layers.BatchNormalization(synchronized=synchronized),
                           kc.layers.Dense(1)])
    model.compile(optimizer=kc.optimizers.SGD(0.05, momentum=0.9), loss="mse", backend=backend)
    return model


def mismatch(world):
    x, y, sw = data()
    model = classifier(hidden=8 if world.rank == 0 else 9)
    distribution.set_distribution(distribution.DataParallel())
    try:
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    except Exception as e:   # noqa: BLE001 (the test reads the report)
        print(f"rank {world.rank} refused: {type(e).__name__}: {e}", flush=True)


class StopAt(kc.callbacks.Callback):
    def __init__(self, action):
        super().__init__()
        self.action = action

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 2:
            self.action()


def failing(world, action):
    x, y, _ = data()
    model = kc.Sequential([kc.Input((6,)), kc.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    distribution.set_distribution(distribution.DataParallel())
    try:
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[StopAt(action)] if world.rank == 1 else [])
    except Exception as e:   # also to a file: MPI_Abort may cut the forwarded stderr short on a busy host
        Path(OUT, f"error_rank{world.rank}.txt").write_text(f"{type(e).__name__}: {e}")
        raise
    print(f"rank {world.rank} finished", flush=True)


if __name__ == "__main__":
    world = distribution.initialize()
    assert world.size == 2, world
    if SCENARIO == "train":
        train(world)
    elif SCENARIO == "mismatch":
        mismatch(world)
    elif SCENARIO == "hang":
        failing(world, lambda: time.sleep(60))
    elif SCENARIO == "dies":
        failing(world, lambda: os._exit(3))
    else:
        raise SystemExit(f"unknown scenario {SCENARIO}")
