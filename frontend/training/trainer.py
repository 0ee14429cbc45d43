"""TrainerMixin: Keras 3's compile/fit/evaluate/predict and *_on_batch for Model.

The default steps run compiled graphs (train_step.py) batch by batch through one executor per
signature; a user's `train_step`/`test_step` override runs eagerly on KTensors instead (the
book's GradientTape listings), with metrics and callbacks exactly as for the default steps.
"""
from __future__ import annotations

import threading
import warnings

import numpy as np

from kcompile.ir import check_batch_size
from kcompile.frontend import state_version
from kcompile.frontend.data import Dataset, unpack_dataset
from kcompile.frontend.layers import rnn_state
from kcompile.frontend.trace import forward_graph
from kcompile.frontend.training import data as D
from kcompile.frontend.training import data_parallel
from kcompile.frontend.training.backend import long_run, make_executor, resolve_backend
from kcompile.frontend.training.callback_base import CallbackList
from kcompile.frontend.training import fast_predict
from kcompile.frontend.training.fit_feeder import FitFeeder
from kcompile.frontend.training.compile_utils import Compiled
from kcompile.frontend.training.history import History
from kcompile.frontend.training import native_metrics, train_prefetch
from kcompile.frontend.training.native_metrics import BATCH_INPUT
from kcompile.frontend.training.runner import StepRunner
from kcompile.frontend.training.streams import RAN_OUT, BatchStream, is_stream
from kcompile.frontend.training.train_step import build_test_step, build_train_step, output_types, target_name

_PREDICT_BUILD_LOCK = threading.RLock()   # see Trainer._predict_executor


class TrainerMixin:
    """Keras training API mixed into Model."""

    def __init__(self):
        self._compiled = None
        self.optimizer = None
        self.stop_training = False
        self.history = None
        self._rng_counter = 0
        self._predict_cache = {}

    # -- compile ---------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True, backend=None):
        """Configure training; backend "native" | "reference" | None (kc.config's default)."""
        resolve_backend(backend)  # a bad or unavailable backend fails here, not mid-fit
        self._compiled = Compiled(self, optimizer, loss, loss_weights, metrics, weighted_metrics, backend)
        self.optimizer = self._compiled.optimizer
        self.loss = loss
        self.compiled = True
        state_version.bump()
        train_prefetch.announce(self)   # a train step will follow: the compiler may start it early

    def _require_compiled(self, what):
        if getattr(self, "_compiled", None) is None:
            raise RuntimeError(f"You must call `compile()` before using the model: {what}() needs an optimizer "
                               "and a loss")
        if self._compiled.output_names is None and self._is_built():
            self._compiled.bind(self)
        return self._compiled

    def _is_built(self) -> bool:
        try:
            self.input_specs()
        except ValueError:
            return False
        return True

    # -- metrics ---------------------------------------------------------------------------------
    @property
    def metrics(self) -> list:
        """Keras 3's list: the loss tracker, the compiled metrics as one container, per-output loss trackers."""
        c = getattr(self, "_compiled", None)
        if c is None:
            return []
        compiled = [self.compiled_metrics] if c.has_metrics() else []
        return [c.loss_tracker] + compiled + list(c.output_loss_trackers)

    @property
    def metrics_names(self) -> list:
        c = getattr(self, "_compiled", None)
        return [] if c is None else c.metric_names()

    def reset_metrics(self):
        for m in self.metrics:
            if isinstance(m, _CompiledMetrics):
                m.reset_state()
            else:
                native_metrics.reset(m)

    @property
    def compiled_loss(self):
        """Keras 2 style `self.compiled_loss(y, y_pred)` for train_step overrides (updates the loss tracker)."""
        def compiled_loss(y, y_pred, sample_weight=None, regularization_losses=None):
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            self._compiled.loss_tracker.update_state(np.asarray(loss.numpy()))
            return loss
        return compiled_loss

    @property
    def compiled_metrics(self):
        return _CompiledMetrics(self)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with this batch; returns every metric's result (Keras 3)."""
        if self._require_compiled("compute_metrics").has_metrics():
            self.compiled_metrics.update_state(y, y_pred, sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self) -> dict:
        logs = {}
        for m in self.metrics:
            result = m.result()
            logs.update(result if isinstance(result, dict) else {m.name: result})
        return {k: _float(v) for k, v in logs.items()}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss(es) plus regularization losses, computed eagerly on KTensors."""
        c = self._require_compiled("compute_loss")
        ys, preds = _as_list(y), _as_list(y_pred)
        total = None
        for loss, weight, yt, yp in zip(c.losses, c.loss_weights, ys, preds):
            if loss is not None:
                term = loss(yt, yp, sample_weight) * weight
                total = term if total is None else total + term
        for extra in self.losses:
            total = extra if total is None else total + extra
        return total

    # -- steps (override train_step / test_step as in Keras) ----------------------------------
    def train_step(self, data):
        """One optimization step on data = (x, y[, sample_weight]); returns the metric logs."""
        x, y, sw = unpack(data)
        return self._graph_step("train", D.to_list(x) if not isinstance(x, dict) else x, y, sw)

    def test_step(self, data):
        x, y, sw = unpack(data)
        return self._graph_step("test", D.to_list(x) if not isinstance(x, dict) else x, y, sw)

    def _overrides(self, name) -> bool:
        return getattr(type(self), name) is not getattr(TrainerMixin, name)

    def _run_step(self, kind, xs, ys, sw, metrics_inside=False):
        if self._overrides(f"{kind}_step"):
            from kcompile.frontend.tensor import convert_to_tensor
            x = [convert_to_tensor(a) for a in xs]
            y = None if ys is None else [convert_to_tensor(a) for a in ys]
            data = (_single(x), _single(y)) + (() if sw is None else (convert_to_tensor(sw),))
            return _flat_dict(getattr(self, f"{kind}_step")(data))
        return self._compiled_step(kind, xs, ys, sw, metrics_inside)

    def _graph_step(self, kind, xs, ys, sw):
        c = self._require_compiled(f"{kind}_step")
        return self._compiled_step(kind, D.by_names(xs, self.input_names, "x"), D.by_names(ys, c.output_names, "y"), sw)

    def _compiled_step(self, kind, xs, ys, sw, metrics_inside=False):
        """One compiled step on arrays already ordered by input/output (fit's per-step path: kept lean).
        metrics_inside (fit): the train step accumulates the metrics it can itself (native_metrics.py)."""
        c = self._require_compiled(f"{kind}_step")
        rnn_state.check_stateful_batch(self, len(xs[0]))
        dp = data_parallel.for_model(self) if kind == "train" else None
        accumulate = metrics_inside and kind == "train" and dp is None
        has_sw = sw is not None
        runner = self._runner(kind, ys, has_sw, accumulate) if dp is None else self._split_step(ys, has_sw)
        inside = runner.native_metrics if dp is None else frozenset()   # (ids of) metrics the graph accumulates
        feed = dict(zip(self.input_names, xs))
        for i, y in enumerate(ys or []):
            feed[target_name(c.output_names, i)] = y
        if sw is not None:
            feed["sample_weight"] = sw
        if kind == "train":
            feed.update(__rng_counter=np.int64(self._rng_counter), __learning_rate=np.float32(c.optimizer.learning_rate),
                        __iterations=np.float32(int(c.optimizer.iterations)))
            if inside:
                feed[BATCH_INPUT] = np.float32(len(xs[0]))
        if dp is None:
            out, n = runner.run(feed), len(xs[0])
        else:   # shard of a global batch: summed gradients, global loss, metrics on the gathered batch
            out, ys, sw, n = dp.step(self, runner, feed, xs, ys, sw)
        if kind == "train":
            c.optimizer.finish_step()
            self._rng_counter += 1
        self._update_metrics(c, out, ys, sw, n, inside)
        return c.logs()

    def _split_step(self, ys, has_sw) -> data_parallel.SplitStep:
        """The train step as gradient and update entries (data-parallel training), cached like _runner's."""
        c = self._compiled
        key = ("split", tuple(None if y is None else y.shape[1:] for y in ys or []), has_sw)
        if key not in c.step_cache:
            y_types = [None if y is None else _target_type(y, self._output_shape(i))
                       for i, y in enumerate(ys or [None] * len(c.output_names))]
            c.step_cache[key] = data_parallel.SplitStep(self, c, y_types, has_sw, resolve_backend(c.backend))
        return c.step_cache[key]

    def _runner(self, kind, ys, has_sw, metrics_inside=False) -> StepRunner:
        c = self._compiled
        ys = ys or [None] * len(c.output_names)
        # targets are fed as f32 whatever their dtype, so their feature shapes decide the step graph
        key = (kind, tuple(None if y is None else _target_type(y, self._output_shape(i)).shape[1:]
                           for i, y in enumerate(ys)), has_sw)
        key += ("metrics",) if metrics_inside else ()   # fit's step, accumulating metrics (native_metrics.py)
        if key not in c.step_cache:
            if kind == "train":   # asked for now: the child compiling it early (if any) puts it in the disk cache
                train_prefetch.before_train_step()
            c.step_cache[key] = StepRunner(self._build_step(kind, ys, has_sw, metrics_inside),
                                           resolve_backend(c.backend), c.optimizer)
        return c.step_cache[key]

    def _build_step(self, kind, ys, has_sw, metrics_inside=False):
        """The step graph for targets like `ys` (a list, None where an output has none)."""
        c = self._compiled
        y_types = [None if y is None else _target_type(y, self._output_shape(i)) for i, y in enumerate(ys)]
        if metrics_inside:
            return build_train_step(self, c, y_types, has_sw, metrics_inside=self._resolve_metrics(c, ys))
        return (build_train_step if kind == "train" else build_test_step)(self, c, y_types, has_sw)

    def _resolve_metrics(self, c, ys) -> bool:
        """Resolve the compiled metrics before the step is built; False where the targets do not allow it."""
        if any(y is None for y in ys):
            return False
        c.resolve_metrics(ys, [t.shape for t in output_types(self)])
        return True

    def _update_metrics(self, c, out, ys, sw, batch_size, inside=frozenset()):
        """The NumPy updates of the metrics the step did not accumulate itself (`inside`: their ids)."""
        if id(c.loss_tracker) not in inside:
            c.loss_tracker.update_state(out["loss"], sample_weight=batch_size)
        for tracker, name in zip(c.output_loss_trackers, c.output_names):
            if f"loss:{name}" in out:
                tracker.update_state(out[f"loss:{name}"], sample_weight=batch_size)
        c.update_metrics(ys, [out[f"pred:{n}"] for n in c.output_names], sw, skip=inside)

    def train_step_graph(self, y, sample_weight=False):
        """The train-step ir.Graph for targets shaped like `y` (for AOT compilation or inspection)."""
        c = self._require_compiled("train_step_graph")
        ys = D.by_names(y, c.output_names, "y")
        return self._runner("train", ys, bool(sample_weight)).graph

    # -- fit / evaluate / predict ----------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs; returns the History (Keras 3 keys, e.g. loss, accuracy, val_loss)."""
        self._require_compiled("fit")
        check_batch_size(batch_size, "fit")
        check_batch_size(validation_batch_size, "fit(validation_batch_size)")
        stream = _stream(x, y, sample_weight, steps_per_epoch, shuffle, "fit")
        x, y, sample_weight, batch_size, shuffle = unpack_dataset(x, y, sample_weight, batch_size, shuffle, "fit")
        if isinstance(validation_data, Dataset):
            validation_data = unpack_dataset(validation_data, None, None, None, False, "fit(validation_data)")[:3]
        batch_size = batch_size or 32
        train, val = None, None
        if stream is None:
            train = self._prepare(x, y, sample_weight, class_weight, "fit")
        elif validation_split:
            raise ValueError("fit: `validation_split` is only supported for arrays, not for generators, iterators "
                             "or PyDatasets; pass validation_data instead")
        if is_stream(validation_data):
            val = _stream(validation_data, None, None, validation_steps, False, "fit(validation_data)")
        elif validation_data is not None:
            vx, vy, vsw = unpack(validation_data)
            val = self._prepare(vx, vy, vsw, None, "fit(validation_data)")
        elif validation_split:
            train, val = _split(train, validation_split)
            if class_weight is not None:   # Keras weighs the training split only (no sample_weight with it)
                val = (val[0], val[1], None)
        steps = stream.num_steps() if stream else steps_per_epoch or -(-len(train[0][0]) // batch_size)
        dp = data_parallel.for_model(self)
        if dp is not None:   # files and progress bars from rank 0 only
            callbacks, verbose = dp.callbacks(callbacks, verbose)
        cbs = self._callbacks(callbacks, verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        cbs.on_train_begin()
        initial_epoch, self._initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch, None  # (a restore)
        if dp is not None:   # same model everywhere, rank 0's weights, optimizer state and start epoch
            initial_epoch = dp.start(self, initial_epoch)
        logs, pending = {}, []
        with long_run((steps or 0) * max(0, epochs - initial_epoch)):   # (a stream may not know its steps)
            for epoch in range(initial_epoch, epochs):
                if stream is None:
                    batches, pending = _epoch_batches(len(train[0][0]), batch_size, shuffle, steps_per_epoch, pending)
                    batches = batches if dp is None or not shuffle else dp.same_batches(batches)
                else:   # the stream's own batches, in its order
                    train, batches = self._stream_epoch(stream, class_weight)
                    if not batches:
                        warnings.warn(RAN_OUT, stacklevel=2)
                        break
                logs = self._fit_epoch(epoch, train, batches, shuffle and stream is None, cbs)
                if val is not None and (epoch + 1) % validation_freq == 0:
                    val_logs = self._validate(val, validation_batch_size or batch_size, cbs, validation_steps)
                    logs.update({f"val_{k}": v for k, v in val_logs.items()})
                cbs.on_epoch_end(epoch, logs)
                if self.stop_training or (stream is not None and stream.exhausted and stream.steps):
                    break
        cbs.on_train_end(logs)
        return self.history

    def _stream_epoch(self, stream, class_weight):
        """One epoch of a generator/PyDataset as checked arrays and the index range of each of its batches."""
        parts, bounds = stream.epoch()
        if not bounds:
            return None, []
        return self._prepare(*parts, class_weight, stream.what), bounds

    def _validate(self, val, batch_size, cbs, steps) -> dict:
        if isinstance(val, BatchStream):   # a generator/PyDataset: its batches this epoch (none left: skip)
            arrays, bounds = self._stream_epoch(val, None)
            return self._evaluate_arrays(arrays, len(bounds[0]), cbs) if bounds else {}
        return self._evaluate_arrays(val, batch_size, cbs, steps)

    def _fit_epoch(self, epoch, train, batches, shuffle, cbs) -> dict:
        self.reset_metrics()
        cbs.on_epoch_begin(epoch)
        logs = {}
        dp = data_parallel.for_model(self)
        feeder = FitFeeder.create(self, train, batches, shuffle, cbs) if dp is None else None
        if feeder is not None:   # the step accumulates every metric: the lean loop (fit_feeder.py)
            return feeder.run_epoch(batches)
        for step, idx in enumerate(batches):
            cbs.on_train_batch_begin(step)
            idx = idx if dp is None else dp.shard(idx)   # this process's rows of the global batch
            bx, by, bsw = _batch(train, idx, contiguous=not shuffle and len(idx) > 0)
            logs = self._run_step("train", bx, by, bsw, metrics_inside=True)
            cbs.on_train_batch_end(step, logs)
            if self.stop_training:
                break
        return dict(logs)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """Loss and metrics on the data: a scalar (loss only), a list [loss, *metrics], or a dict."""
        self._require_compiled("evaluate")
        kwargs.pop("_use_cached_eval_dataset", None)   # Keras's internal flag: no cache here, no effect
        if kwargs:
            raise ValueError(f"evaluate(): arguments not recognized: {sorted(kwargs)}")
        check_batch_size(batch_size, "evaluate")
        x, y, sample_weight, batch_size, steps = _drain(x, y, sample_weight, batch_size, steps, "evaluate")
        x, y, sample_weight, batch_size, _ = unpack_dataset(x, y, sample_weight, batch_size, False, "evaluate")
        arrays = self._prepare(x, y, sample_weight, None, "evaluate")
        n_steps = steps or -(-len(arrays[0][0]) // (batch_size or 32))
        cbs = self._callbacks(callbacks, verbose, steps=n_steps, evaluating=True, history=False)
        with long_run(n_steps):
            logs = self._evaluate_arrays(arrays, batch_size or 32, cbs, steps)
        return self._flat_logs(logs, return_dict)

    def _evaluate_arrays(self, arrays, batch_size, cbs, steps=None) -> dict:
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step, idx in enumerate(D.batch_slices(len(arrays[0][0]), batch_size, False, steps)):
            cbs.on_test_batch_begin(step)
            logs = self._run_step("test", *_batch(arrays, idx, contiguous=True))
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return dict(logs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for x in batches of batch_size (any size; the last batch may be smaller)."""
        check_batch_size(batch_size, "predict")
        quiet = verbose == 0 and callbacks is None and steps is None   # no progress bar: the prepared call
        if quiet:
            prepared = self.__dict__.get("_prepared_predict")
            if (prepared is not None and prepared.version == state_version.current and prepared.single
                    and type(x) is np.ndarray and x.ndim and 0 < len(x) <= (batch_size or 32)):
                outs = prepared.plan.call1(x)   # one batch of one input: the shortest way
                if outs is not None:
                    return outs[0] if len(outs) == 1 else outs
        with long_run(-(-len(x) // (batch_size or 32)) if isinstance(x, np.ndarray) and x.ndim else steps or 0):
            outs = self._predict_prepared(x, batch_size or 32) if quiet else None
            return outs if outs is not None else self._predict_batches(x, batch_size, verbose, steps, callbacks)

    def _predict_batches(self, x, batch_size, verbose, steps, callbacks):
        x, _, _, batch_size, steps = _drain(x, None, None, batch_size, steps, "predict")
        x, _, _, batch_size, _ = unpack_dataset(x, None, None, batch_size, False, "predict")
        xs = self._prepare_x(x)
        batches = D.batch_slices(len(xs[0]), batch_size or 32, False, steps)
        cbs = self._callbacks(callbacks, verbose, steps=len(batches), history=False)
        cbs.on_predict_begin()
        parts = []
        for step, idx in enumerate(batches):
            cbs.on_predict_batch_begin(step)
            parts.append(self._predict_batch([a[idx[0]:idx[-1] + 1] for a in xs]))
            cbs.on_predict_batch_end(step, {"outputs": parts[-1]})
        cbs.on_predict_end()
        outs = [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
        return outs[0] if len(outs) == 1 else outs

    def predict_step(self, data):
        x, _, _ = unpack(data)
        return self(x, training=False)

    def _predict_batch(self, xs) -> list:
        """The compiled forward pass, or a predict_step override run eagerly on the batch (x,)."""
        if not self._overrides("predict_step"):
            return self._predict_arrays(xs)
        from kcompile.frontend.tensor import convert_to_tensor
        out = self.predict_step((_single([convert_to_tensor(a) for a in xs]),))
        return [np.asarray(_numpy(o)) for o in (out if isinstance(out, (list, tuple)) else [out])]

    def predict_on_batch(self, x):
        prepared = self.__dict__.get("_prepared_predict")   # fast_predict.call, inlined for the common case
        outs = None
        if prepared is not None and prepared.version == state_version.current and prepared.single:
            outs = prepared.plan.call1(x)
        if outs is None:
            outs = fast_predict.call(self, x)   # several inputs, or a list of them
        if outs is None:
            outs = self._predict_batch(self._prepare_x(x))
            fast_predict.prepare(self)
        return outs[0] if len(outs) == 1 else outs

    def _predict_prepared(self, x, batch_size: int):
        """predict(verbose=0) through the prepared call, batch by batch (None: take the slow path)."""
        prepared = fast_predict.current(self)
        arrays = None if prepared is None else prepared.arrays(x)
        first = arrays[0] if arrays else None
        if type(first) is np.ndarray and first.ndim and 0 < len(first) <= batch_size:   # one batch: no slicing
            outs = prepared.plan(arrays)
            if outs is not None:
                return outs[0] if len(outs) == 1 else outs
        if not arrays or any(type(a) is not np.ndarray or a.ndim == 0 or len(a) != len(arrays[0]) for a in arrays):
            return None
        n = len(arrays[0])
        parts = [prepared.plan([a[i:i + batch_size] for a in arrays]) for i in range(0, n, batch_size)]
        if not parts or any(p is None for p in parts):
            return None
        outs = parts[0] if len(parts) == 1 else [np.concatenate(o) for o in zip(*parts)]
        return outs[0] if len(outs) == 1 else outs

    def _predict_arrays(self, xs) -> list:
        execute, graph = self._predict_executor()
        states = rnn_state.state_variables(self)
        rnn_state.check_stateful_batch(self, len(xs[0]))
        weights = {v.path: v for v in self.weights} | states
        params = {name: weights[name].value_array for name in graph.param_names if name in weights}  # else: the graph's own (int8 passes)
        inputs = [np.ascontiguousarray(a, dtype=v.type.dtype.np) for a, v in zip(xs, graph.inputs)]
        outs = execute(inputs, params)
        return rnn_state.assign_state_outputs(states, graph.output_names, outs)

    def _predict_executor(self):
        c = getattr(self, "_compiled", None)
        backend = resolve_backend(c.backend if c is not None else None)
        key = (backend, tuple((v.path, v.shape) for v in self.weights))
        cache = self.__dict__.setdefault("_predict_cache", {})
        hit = cache.get(key)
        if hit is None:
            with _PREDICT_BUILD_LOCK:   # threads predicting at once build it once (and never see it cleared)
                hit = cache.get(key)
                if hit is None:
                    graph = forward_graph(self, training=False, state_outputs=True)   # stateful RNNs' updates
                    hit = (make_executor(graph, backend), graph)
                    cache.clear()
                    cache[key] = hit
        return hit

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._require_compiled("train_on_batch")
        self.reset_metrics()   # Keras 3: the logs describe this batch alone
        logs = self._run_step("train", *self._prepare(x, y, sample_weight, class_weight, "train_on_batch"),
                              metrics_inside=True)
        return self._flat_logs(logs, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        self.reset_metrics()
        logs = self._run_step("test", *self._prepare(x, y, sample_weight, None, "test_on_batch"))
        return self._flat_logs(logs, return_dict)

    def _flat_logs(self, logs, return_dict):
        """Keras order: loss, then metrics as compiled (a custom step's own keys as it returned them)."""
        if return_dict:
            return logs
        ordered = [logs[k] for k in self.metrics_names if k in logs] or list(logs.values())
        return ordered[0] if len(ordered) == 1 else ordered

    # -- data ------------------------------------------------------------------------------------
    def _ensure_built(self, xs):
        if not self._is_built():
            from kcompile.frontend.tensor import convert_to_tensor
            if isinstance(xs, dict):  # a subclassed model whose call takes a dict of inputs
                self({k: convert_to_tensor(a[:1]) for k, a in xs.items()})
                return
            self([convert_to_tensor(a[:1]) for a in xs] if len(xs) > 1 else convert_to_tensor(xs[0][:1]))

    def _prepare_x(self, x) -> list:
        xs = x if isinstance(x, dict) else D.to_list(D.merge_nested_lists(x))
        if xs is None:
            raise ValueError("x is required")
        self._ensure_built(xs)
        xs = D.by_names(xs, self.input_names, "x")
        D.check_lengths(xs, None, None)
        D.check_features(xs, [spec.shape[1:] for _, spec in self.input_specs()], self.input_names)
        return xs

    def _prepare(self, x, y, sample_weight, class_weight, what):
        """Standardize and check (x, y, sample_weight) before any step runs."""
        xs = self._prepare_x(x)
        c = self._require_compiled(what)
        ys = D.by_names(y, c.output_names, "y") if y is not None else None
        sw = None if sample_weight is None else np.asarray(sample_weight, np.float32).reshape(-1)
        if class_weight is not None:
            if sample_weight is not None:   # Keras 3 refuses the pair rather than pick a combination
                raise ValueError(f"{what}: you cannot pass `class_weight` and `sample_weight` at the same time")
            if ys is None or len(ys) != 1:
                raise ValueError("class_weight needs exactly one output with targets")
            sw = D.class_weights_to_sample_weights(ys[0], class_weight)
        D.check_lengths(xs, ys, sw)
        if ys is None and not self._overrides("train_step") and any(loss is not None for loss in c.losses):
            raise ValueError(f"{what}: the model was compiled with a loss, so target data `y` is required")
        if ys is not None:
            self._check_targets(ys)
        return xs, ys, sw

    def _output_shape(self, i: int) -> tuple:
        """Output i's traced shape without the batch (symbols such as a dynamic length T kept)."""
        c = self._compiled
        if not hasattr(c, "output_types"):
            c.output_types = [t.shape[1:] for t in output_types(self)]
        return c.output_types[i] if i < len(c.output_types) else ()

    def _check_targets(self, ys):
        c = self._compiled
        self._output_shape(0)
        for loss, y, shape, name in zip(c.losses, ys, c.output_types, c.output_names):
            if loss is not None:
                D.check_labels(loss, y, shape, name)

    def _callbacks(self, callbacks, verbose, history=True, **params) -> CallbackList:
        from kcompile.frontend.callbacks import ProgbarLogger
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = list(callbacks or [])
        if history:
            self.history = History()
            cbs.append(self.history)
        if verbose and not any(isinstance(cb, ProgbarLogger) for cb in cbs):
            cbs.insert(0, ProgbarLogger())
        return CallbackList(cbs, model=self, verbose=verbose, **params)


class _CompiledMetrics:
    """Keras 3's CompileMetrics: the compiled metrics as one metric ("compile_metrics") whose result is a
    dict; `self.compiled_metrics.update_state(y, y_pred)` in a train_step override updates them all."""

    name = "compile_metrics"

    def __init__(self, model):
        self.model = model

    def result(self) -> dict:
        return {e.name: e.metric.result() for e in self.model._compiled.metrics or []}

    def update_state(self, y_true, y_pred, sample_weight=None):
        ys = [np.asarray(y) for y in _as_list(y_true)]
        preds = [np.asarray(p) for p in _as_list(y_pred)]
        self.model._compiled.update_metrics(ys, preds, sample_weight)

    def reset_state(self):
        for m in self.metrics:
            native_metrics.reset(m)

    @property
    def metrics(self):
        return [e.metric for e in self.model._compiled.metrics or []]


def unpack(data):
    """(x,), (x, y) or (x, y, sample_weight), as keras.utils.unpack_x_y_sample_weight."""
    if isinstance(data, (list, tuple)) and 1 <= len(data) <= 3 and not _is_array_list(data):
        data = tuple(data) + (None,) * (3 - len(data))
        return data[0], data[1], data[2]
    return data, None, None


def _is_array_list(data) -> bool:
    return isinstance(data, list)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _single(xs):
    return None if xs is None else xs[0] if len(xs) == 1 else xs


def _numpy(v):
    return v.numpy() if hasattr(v, "numpy") else v


def _flat_dict(logs) -> dict:
    """A step's logs as floats, nested dicts (compile_metrics' result) flattened, as Keras's _pythonify_logs."""
    out = {}
    for k, v in dict(logs).items():
        out.update(_flat_dict(v) if isinstance(v, dict) else {k: _float(v)})
    return out


def _float(v):
    v = v.numpy() if hasattr(v, "numpy") else v
    try:
        return float(v)
    except TypeError:
        return v


def _target_type(y: np.ndarray, out_shape: tuple = ()):
    """Targets' type: f32, symbolic batch, and the output's symbolic dims (a dynamic length T) where
    the target has the output's rank, so one step graph serves targets of every length."""
    from kcompile.ir import TensorType
    tail = y.shape[1:]
    if len(tail) in (len(out_shape), len(out_shape) - 1):   # (sparse labels lack the class axis)
        tail = tuple(d if isinstance(d, str) else t for d, t in zip(out_shape, tail)) + tail[len(out_shape):]
    return TensorType(("N",) + tail, "f32")


def _stream(x, y, sample_weight, steps, shuffle, what):
    """A BatchStream for a generator/iterator/PyDataset x (None for arrays and Datasets)."""
    if not is_stream(x):
        return None
    if y is not None or sample_weight is not None:
        raise ValueError(f"{what}: when x is a generator, iterator or PyDataset, y and sample_weight come from it "
                         "and must not be given")
    return BatchStream(x, steps, what, shuffle=shuffle)


def _drain(x, y, sample_weight, batch_size, steps, what):
    """evaluate/predict on a stream: its batches (`steps` of them, else all) joined; results do not depend
    on the batch boundaries, so the array path runs them with the first batch's size."""
    stream = _stream(x, y, sample_weight, steps, False, what)
    if stream is None:
        return x, y, sample_weight, batch_size, steps
    parts, bounds = stream.epoch()
    if not bounds:
        raise ValueError(f"{what}: the generator/PyDataset yielded no batches")
    return parts[0], parts[1], parts[2], len(bounds[0]), None


def _batch(arrays, idx, contiguous):
    xs, ys, sw = arrays
    bx = D.take(xs, idx, contiguous)
    by = None if ys is None else D.take(ys, idx, contiguous)
    bsw = None if sw is None else D.take([sw], idx, contiguous)[0]
    return bx, by, bsw


def _split(train, validation_split):
    xs, ys, sw = train
    flat = list(xs) + list(ys or []) + [sw]
    tr, va = D.split_validation(flat, validation_split)
    nx, ny = len(xs), len(ys or [])
    pack = (lambda f: (f[:nx], f[nx:nx + ny] if ys is not None else None, f[-1]))
    return pack(tr), pack(va)


def _epoch_batches(n, batch_size, shuffle, steps_per_epoch, pending):
    """One epoch's batches and those left for the next. As Keras's EpochIterator: with steps_per_epoch
    the next epoch continues where this one stopped, and an epoch ends early when the data runs out."""
    if steps_per_epoch is None:
        return D.batch_slices(n, batch_size, shuffle), []
    pending = pending or D.batch_slices(n, batch_size, shuffle)
    if steps_per_epoch > len(pending):
        warnings.warn(f"Your input ran out of data; the epoch stops after {len(pending)} of {steps_per_epoch} "
                      "steps (steps_per_epoch is larger than the batches left in the data)", stacklevel=3)
    return pending[:steps_per_epoch], pending[steps_per_epoch:]
