"""Data-parallel fit: every process trains on its shard of each global batch, weights kept identical.

Per step (split_step.py builds the two native entries):
  1. the gradient entry runs on this process's rows, scaled by n_r / N, into one packed buffer;
  2. one in-place allreduce sums the packed buffer: the gradient of the mean loss over the global
     batch, the sample-weighted mean of BatchNormalization's moving statistics, the global loss;
  3. the update entry applies the optimizer in place, identically on every process;
  4. predictions, targets and sample weights are gathered, so every process updates its metrics
     with the global batch and reports the same logs one process would.

Shards are `np.array_split` of the global batch's rows: sizes differ by at most one, the uneven last
batch included. A process with no rows (a global batch smaller than the number of processes) skips
the gradient entry and contributes zeros. At the start of fit the processes check that they hold
the same model (a hash of the weights' names, shapes and dtypes and of the optimizer), rank 0
broadcasts weights, optimizer slots, the step count and the start epoch, and a checksum of the
weights confirms that every process now holds the same ones. With shuffle=True rank 0's batch
order is broadcast each epoch. Dropout draws different masks on each process (the draw counter is
offset by the rank), so with dropout the result is not bit-equal to one process, only equal in law.
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from kcompile.ir.ops.collective import set_sum_hook

from .collectives import Collectives, DistributedError
from .runner import StepRunner
from .split_step import GRAD_SCALE, PACKED, build_gradient_step, build_update_step

PHASES = ("shard sizes", "gradient entry", "allreduce", "update entry", "gather")
# Callbacks that write files or print progress: kept on rank 0 only
RANK0_ONLY = ("ModelCheckpoint", "CSVLogger", "BackupAndRestore", "ProgbarLogger", "TensorBoard")


def active_world():
    """The world when a DataParallel distribution is set, else None (plain training)."""
    from kcompile.frontend import distribution
    dist = distribution.distribution()
    return None if dist is None else dist.world


class SplitStep:
    """The two native entries for one target signature, and the packed buffer's layout."""

    def __init__(self, model, compiled, y_types, has_sw, backend):
        grad_step, self.layout, trainable, states = build_gradient_step(model, compiled, y_types, has_sw)
        update_step = build_update_step(model, compiled, self.layout, trainable, states)
        self.grad = StepRunner(grad_step, backend, compiled.optimizer)
        self.update = StepRunner(update_step, backend, compiled.optimizer)
        self.losses = [(name, offset) for _, name, _, offset in self.layout.of("loss")]
        self.preds = [(v.type, name) for v, name in zip(grad_step.graph.outputs, grad_step.graph.output_names)
                      if name != PACKED]
        # synchronized BatchNormalization: collectives inside the gradient entry, which every process must run
        self.collective_inside = any(n.op == "cross_process_sum" for n in grad_step.graph.nodes)


class DataParallelFit:
    """The data-parallel side of one model's training: sharding, the split step, the checks."""

    def __init__(self, world):
        self.world = world
        self.coll = Collectives(world)
        self.seconds = dict.fromkeys(PHASES, 0.0)   # time per phase of step(), summed (bench_distributed.py)
        self.steps = 0
        self.started = False   # start() ran (fit runs it each call; train_on_batch on its first step)
        if world.size > 1:   # cross_process_sum (synchronized BatchNormalization) sums through these collectives
            set_sum_hook(lambda buf: self.coll.allreduce_sum_(buf, "synchronized BatchNormalization statistics"))

    # -- data --------------------------------------------------------------------------------
    def shard(self, idx):
        """This process's rows of a global batch (array_split: sizes differ by at most one)."""
        return np.array_split(np.asarray(idx), self.world.size)[self.world.rank]

    def same_batches(self, batches):
        """Rank 0's batch order on every process (each process's NumPy RNG shuffles differently)."""
        if self.world.size == 1 or not batches:
            return batches
        order = self.coll.broadcast_(np.ascontiguousarray(np.concatenate(batches), np.int64), "the batch order")
        return np.split(order, np.cumsum([len(b) for b in batches])[:-1])

    # -- start of fit ------------------------------------------------------------------------
    def start(self, model, initial_epoch: int) -> int:
        """Check every process holds the same model, broadcast rank 0's state; returns the start epoch."""
        if model._overrides("train_step"):   # its eager gradients would never be averaged: ranks would diverge
            raise NotImplementedError(f"model '{model.name}' overrides train_step: data-parallel fit runs the "
                                      "compiled step only; drop the override or unset the distribution")
        opt = model.optimizer
        trainable = model.trainable_weights
        opt.build(trainable)
        arrays = [v.value_array for v in model.weights]
        arrays += [opt.slots[v.path][s] for v in trainable for s in sorted(opt.slots.get(v.path, {}))]
        self._check_same(_structure_hash(model, arrays), "model structure (weight names, shapes, dtypes) or optimizer")
        for a in arrays:
            if not (a.flags.c_contiguous and a.flags.writeable):
                raise DistributedError(f"data-parallel fit: a weight array of shape {a.shape} is not a writeable "
                                       "C-contiguous array; it cannot be broadcast in place")
            self.coll.broadcast_(a, "the weights")
        meta = self.coll.broadcast_(np.array([int(opt.iterations), int(initial_epoch)], np.int64), "the step count")
        opt.iterations, initial_epoch = int(meta[0]), int(meta[1])
        self._check_same(_checksum(arrays), "weights after the broadcast from rank 0")
        self.started = True
        return initial_epoch

    def _check_same(self, digest: bytes, what: str) -> None:
        rows = self.coll.allgather_fixed(np.frombuffer(digest, np.uint8), what)
        differ = [r for r in range(len(rows)) if not np.array_equal(rows[r], rows[0])]
        if differ:
            raise DistributedError(f"data-parallel fit: processes {differ} differ from process 0 in their {what}; "
                                   "every process must build and compile the same model")

    def callbacks(self, callbacks, verbose):
        """Rank 0 keeps every callback; the others drop the ones that write files or print progress."""
        if self.world.rank == 0:
            return callbacks, verbose
        return [cb for cb in callbacks or [] if type(cb).__name__ not in RANK0_ONLY], 0

    # -- one step ----------------------------------------------------------------------------
    def step(self, model, split: SplitStep, feed: dict, xs, ys, sw):
        """One data-parallel step; returns (outputs as the fused step gives them, global ys, global sw, N)."""
        if not self.started:   # train_on_batch without a fit first: same model and weights everywhere
            self.start(model, 0)
        clock = _Clock(self.seconds)
        n_local = len(xs[0])
        counts = self.coll.allgather_fixed(np.array([n_local], np.int64), "the shard sizes")[:, 0]
        total = int(counts.sum())
        if total == 0:
            raise ValueError("data-parallel fit: the global batch is empty on every process")
        if split.collective_inside and counts.min() == 0:   # (every process sees the counts: all raise)
            raise ValueError(f"data-parallel fit: a global batch of {total} rows leaves a process without rows, "
                             "and synchronized BatchNormalization needs every process in every step: use a "
                             f"batch_size of at least {self.world.size} (and a data size that leaves no last "
                             "batch smaller than that), or synchronized=False")
        clock("shard sizes")
        # a draw counter per process (dropout masks differ across processes; with one process unchanged)
        feed["__rng_counter"] = np.int64(int(feed["__rng_counter"]) * self.world.size + self.world.rank)
        if n_local:
            feed[GRAD_SCALE] = np.float32(n_local / total)
            out = split.grad.run(feed)
            packed = out[PACKED]
            preds = [out[name] for _, name in split.preds]
        else:   # no rows here: contribute nothing to the sums
            packed = np.zeros(split.layout.size, np.float32)
            preds = [np.empty((0,) + tuple(t.shape[1:]), t.dtype.np) for t, _ in split.preds]
        clock("gradient entry")
        self.coll.allreduce_sum_(packed, "the packed gradients")
        clock("allreduce")
        split.update.run({PACKED: packed, "__learning_rate": feed["__learning_rate"],
                          "__iterations": feed["__iterations"]})
        clock("update entry")
        result = {name: np.float32(packed[offset]) for name, offset in split.losses}
        given = [k for k, y in enumerate(ys or []) if y is not None]   # (an output may have no target)
        local = preds + [np.asarray(ys[k]) for k in given] + ([] if sw is None else [np.asarray(sw, np.float32)])
        gathered = iter(self.coll.allgather_rows(local, counts, "predictions, targets and sample weights"))
        for _, name in split.preds:
            result[name] = next(gathered)
        if ys is not None:
            ys = list(ys)
            for k in given:
                ys[k] = next(gathered)
        sw = None if sw is None else next(gathered)
        clock("gather")
        self.steps += 1
        return result, ys, sw, total


class _Clock:
    """Adds the time since the last call to seconds[phase]."""

    def __init__(self, seconds):
        self.seconds, self.last = seconds, time.perf_counter()

    def __call__(self, phase):
        now = time.perf_counter()
        self.seconds[phase] += now - self.last
        self.last = now


def _structure_hash(model, arrays) -> bytes:
    h = hashlib.sha256()
    for v in model.weights:
        h.update(f"{v.path}:{tuple(v.shape)}:{v.dtype};".encode())
    h.update(repr([(a.shape, a.dtype.str) for a in arrays]).encode())
    plain = (bool, int, float, str, type(None))   # (a schedule object's repr holds its address)
    config = model.optimizer.get_config()
    h.update(repr(sorted((k, v if isinstance(v, plain) else type(v).__name__) for k, v in config.items())).encode())
    h.update(type(model.optimizer).__name__.encode())
    return h.digest()


def _checksum(arrays) -> bytes:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a.tobytes())
    return h.digest()


def for_model(model):
    """The model's DataParallelFit while a DataParallel distribution is set, else None."""
    world = active_world()
    if world is None:
        return None
    dp = model.__dict__.get("_data_parallel")
    if dp is None or dp.world is not world:
        dp = model.__dict__["_data_parallel"] = DataParallelFit(world)
    return dp
