"""fit's lean epoch: batches fed to the bound native train step with nothing built per step.

The general step (Trainer._compiled_step) builds a feed dict, casts every array, looks up the step,
updates metrics and builds the logs each batch: about 100 us of Python, which after a native call
that streamed megabytes of weights runs from cold caches and costs 3-4 times that. When the step
accumulates every metric itself (native_metrics.py), a FitFeeder does per batch only what must be:
  - contiguous batches: the input pointer table gets the address of the batch's first row (no copy,
    no array object); shuffled batches: the step's own native entry gathers the rows named by the
    epoch's permutation into fixed buffers (compiler/gather_entry.py: the indices are checked there);
  - the step counter, learning rate, iteration count and batch size go into fixed ctypes blocks;
  - one native call of one argument (BoundCall.run_filled / run_gathered), then the optimizer's
    iteration count advances in place (as the weights do) and the rng's counter by one.
Data of another dtype or layout is copied into the batch buffer in Python (_Source.fill).
Per-batch callbacks are called only on the callbacks that override them, and the per-batch logs
are built only when a callback's on_train_batch_end will read them (as Keras 3 does); the epoch's
logs are the metrics' results after the last batch, as before. Anything else (sample weights,
NumPy-side metrics, several losses, stateful RNNs, data parallelism, a dynamic length, the reference
backend) takes the general step: `create` returns None.
"""
from __future__ import annotations

import ctypes

import numpy as np

from kcompile.frontend import state_version
from kcompile.frontend.layers import rnn_state
from kcompile.frontend.optimizers import Optimizer
from kcompile.frontend.training.callback_base import Callback
from kcompile.frontend.training.native_metrics import BATCH_INPUT
from kcompile.frontend.training.train_step import target_name

CONVERT_ONCE_BYTES = 64 << 20   # data of another dtype is converted once per epoch up to this size


def overrides(callback, hook: str) -> bool:
    """Whether calling `hook` on `callback` may do anything (the base class's hooks do nothing; its
    on_train_batch_* hooks call on_batch_*)."""
    if not isinstance(callback, Callback) or hook in vars(callback):
        return True
    alias = hook.replace("on_train_batch_", "on_batch_")
    return any(getattr(type(callback), h) is not getattr(Callback, h) for h in {hook, alias})


class _Source:
    """One batched input of the step: the epoch's array and how a batch of it reaches the table."""

    def __init__(self, k: int, array: np.ndarray, dtype: np.dtype, batch_size: int, shuffle: bool):
        self.k = k
        if array.dtype != dtype and array.nbytes // array.itemsize * dtype.itemsize <= CONVERT_ONCE_BYTES:
            array = np.ascontiguousarray(array, dtype=dtype)   # (labels: once per epoch, not per batch)
        self.array = array
        self.direct = array.dtype == dtype and array.flags.c_contiguous   # rows readable where they lie
        self.row_bytes = array.strides[0]
        self.base = array.ctypes.data
        # gathered or copied rows (none where contiguous batches are read in place)
        self.buffer = np.empty((batch_size,) + array.shape[1:], dtype) if shuffle or not self.direct else None
        self.buffer_address = None if self.buffer is None else self.buffer.ctypes.data

    def fill(self, idx, b: int, shuffle: bool) -> None:
        """Rows idx (b of them) into the buffer, cast to the step's dtype (data the step cannot read
        in place: another dtype or layout)."""
        out = self.buffer if b == len(self.buffer) else self.buffer[:b]
        if shuffle:
            np.copyto(out, np.take(self.array, idx, axis=0), casting="unsafe")
        else:
            lo = int(idx[0])
            np.copyto(out, self.array[lo:lo + b], casting="unsafe")


class _Scalars:
    """The step's scalar inputs in two fixed ctypes blocks (a write costs less than a 0-d array's)."""

    TYPES = {"__rng_counter": (np.int64, 0), "__learning_rate": (np.float32, 0), "__iterations": (np.float32, 1),
             BATCH_INPUT: (np.float32, 2)}

    def __init__(self):
        self.ints, self.floats = (ctypes.c_int64 * 1)(), (ctypes.c_float * 3)()

    def address(self, name: str, dtype) -> int | None:
        """The address of scalar input `name` of this dtype (None: not one the feeder fills)."""
        want, k = self.TYPES.get(name, (None, 0))
        if want is None or np.dtype(dtype) != want:
            return None
        block = self.ints if want == np.int64 else self.floats
        return ctypes.addressof(block) + k * ctypes.sizeof(block._type_)


class FitFeeder:
    """One epoch of fit on a bound native train step (see the module docstring)."""

    @classmethod
    def create(cls, model, train, batches: list, shuffle: bool, cbs) -> "FitFeeder | None":
        xs, ys, sw = train
        c = model._compiled
        if sw is not None or ys is None or not batches or model._overrides("train_step"):
            return None
        if rnn_state.stateful_layers(model):   # (their batch check and state outputs: the general step)
            return None
        runner = model._runner("train", ys, False, metrics_inside=True)
        inside = runner.native_metrics
        if (not runner._native or c.output_loss_trackers or id(c.loss_tracker) not in inside
                or any(id(e.metric) not in inside for e in c.metrics or [])):
            return None
        bound = runner._bound_call()
        if not hasattr(bound, "run_filled") or bound.fn.dynamic:
            return None
        data = dict(zip(model.input_names, xs))
        data.update((target_name(c.output_names, i), y) for i, y in enumerate(ys))
        scalars = _Scalars()
        for v in runner.graph.inputs:   # (a mismatch: the general step's checks name it)
            a = data.get(v.name)
            if a is None and scalars.address(v.name, v.type.dtype.np) is None:
                return None
            if a is not None and (type(a) is not np.ndarray or not v.type.has_batch
                                  or a.shape[1:] != tuple(v.type.shape[1:])):
                return None
        if not _batches_valid(batches, len(xs[0]), shuffle):
            return None
        return cls(model, runner, data, scalars, batches, shuffle, cbs)

    def __init__(self, model, runner, data: dict, scalars: _Scalars, batches: list, shuffle: bool, cbs):
        self.model, self.runner, self.shuffle, self.scalars = model, runner, shuffle, scalars
        self.compiled = model._compiled
        self.optimizer = opt = self.compiled.optimizer
        batch_size = max(len(idx) for idx in batches)
        self.fixed = []     # (table index, address) written once per binding
        self.pointed = []   # (table index, base, row bytes): contiguous batches read where they lie
        gathered = []       # (table index, source address, bytes per row): shuffled rows the native entry gathers
        self.filled = []    # _Source: cast (or strided) data copied into its buffer
        self.sources = []   # every _Source: native code reads their arrays and writes their buffers
        for k, v in enumerate(runner.graph.inputs):
            if v.name not in data:
                self.fixed.append((k, scalars.address(v.name, v.type.dtype.np)))
                continue
            s = _Source(k, data[v.name], v.type.dtype.np, batch_size, shuffle)
            self.sources.append(s)
            if s.direct and not shuffle:
                self.pointed.append((k, s.base, s.row_bytes))
                continue
            self.fixed.append((k, s.buffer_address))
            (gathered.append((k, s.base, s.row_bytes)) if s.direct else self.filled.append(s))
            self.rows = len(s.array)
        # the epoch's index arrays as int64 (native code reads them) and their addresses, once
        self.indices = [np.ascontiguousarray(idx, np.int64) for idx in batches] if gathered else None
        self.addresses = [idx.ctypes.data for idx in self.indices] if gathered else None
        self.records = (ctypes.c_int64 * (3 * len(gathered)))(*[w for g in gathered for w in g]) if gathered else None
        self.begin = [cb.on_train_batch_begin for cb in cbs.callbacks if overrides(cb, "on_train_batch_begin")]
        self.end = [cb.on_train_batch_end for cb in cbs.callbacks if overrides(cb, "on_train_batch_end")]
        # the optimizer's own counting and constant learning rate are done here in fewer steps
        plain = type(opt).finish_step is Optimizer.finish_step and type(opt).learning_rate is Optimizer.learning_rate
        self._plain_optimizer = plain
        self._attach()

    def _attach(self) -> None:
        """Point the bound step's input table at the fixed buffers (again after any callback ran:
        it may have replaced a weight's array, so the binding is renewed, or run a step itself),
        and take the optimizer's iteration counter and learning rate as they are now."""
        self.bound = self.runner._bound_call()
        table = self.table = self.bound.input_table()
        if self.records is not None:
            self.bound.gather_from(self.rows, self.records, keep=self.sources)
        for k, address in self.fixed:
            table[k] = address
        opt = self.optimizer
        counter = opt.iterations.value_array
        self._counter = counter   # (kept alive: the cell below points into it)
        in_place = (self._plain_optimizer and counter.dtype == np.int64 and counter.shape == ()
                    and counter.flags.writeable)
        # the count advances in place, as the weights do (the array stays the Variable's)
        self._count = ctypes.c_int64.from_address(counter.ctypes.data) if in_place else None
        raw = opt._learning_rate
        constant = self._plain_optimizer and not callable(raw)   # (a schedule: asked every step)
        self._lr = (raw, opt.learning_rate) if constant else None
        self._version = state_version.current

    def run_epoch(self, batches: list) -> dict:
        """Train on every batch (until stop_training); returns the epoch's logs."""
        model, compiled, begin, end = self.model, self.compiled, self.begin, self.end
        for step, idx in enumerate(batches):
            if begin:
                for hook in begin:
                    hook(step, None)
                if state_version.current != self._version:
                    self._attach()
            self._step(idx, step)
            if end:
                logs = compiled.logs()
                for hook in end:
                    hook(step, logs)
                if state_version.current != self._version:
                    self._attach()
            if model.stop_training:
                break
        return compiled.logs()

    def _step(self, idx, step: int) -> None:
        """Feed batch `step` (rows `idx` of the data) and run the step: what Trainer._compiled_step does."""
        b = len(idx)
        table = self.table
        for k, base, row_bytes in self.pointed:
            table[k] = base + int(idx[0]) * row_bytes
        for s in self.filled:
            s.fill(idx, b, self.shuffle)
        opt, model, ints, floats = self.optimizer, self.model, self.scalars.ints, self.scalars.floats
        ints[0] = model._rng_counter
        lr, count = self._lr, self._count
        floats[0] = lr[1] if lr is not None and opt._learning_rate is lr[0] else opt.learning_rate
        in_place = count is not None and opt._iterations.data is self._counter
        floats[1] = count.value if in_place else int(opt.iterations)   # (an int -> f32 as np.float32 rounds it)
        floats[2] = b
        if self.addresses is None:
            self.bound.run_filled(b)
        else:   # the native entry gathers the shuffled rows itself (compiler/gather_entry.py)
            self.bound.run_gathered(b, self.addresses[step])
        if in_place:
            count.value += 1
        else:
            opt.finish_step()
        model._rng_counter += 1


def _batches_valid(batches: list, n: int, shuffle: bool) -> bool:
    """Every batch non-empty and within the n rows; unshuffled batches contiguous ranges (the table
    then points into the data itself, so this bounds every native read)."""
    for idx in batches:
        if not len(idx):
            return False
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n or (not shuffle and (int(idx[0]) != lo or hi - lo + 1 != len(idx))):
            return False
    return True
