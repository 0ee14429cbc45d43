"""Run a step graph on one batch, updating Variables and optimizer slots in their own arrays.

The train step's meta["param_updates"] names the parameters it updates. The native backend binds
the current arrays of the Variables and slots once (compiler.jit.BoundCall) and its code writes
the updates straight into them: nothing is copied back, and the Variables see the new values.
The pointer table is rebuilt only when an array was replaced (Variable.assign, set_weights, an
eager optimizer step). The reference backend gets the updates as outputs and copies them in.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import weight_epoch

from .backend import make_executor


class StepRunner:
    """One compiled step graph plus the Variables and optimizer slots it reads and updates."""

    def __init__(self, step, backend: str, optimizer=None):
        self.step = step
        self.graph = step.graph
        self.optimizer = optimizer
        self.execute = make_executor(step.graph, backend)
        self.updates = dict(self.graph.meta.get("param_updates", {}))   # output name -> param name
        self.input_types = [(v.name, v.type.dtype.np) for v in step.graph.inputs]
        self.param_names = self.graph.param_names
        self._holders = [self._holder(name) for name in self.param_names]
        self._native = hasattr(self.execute, "bind")
        self.output_names = [n for n in self.graph.output_names if n not in self.updates or not self._native]
        self._bound = None
        self._bound_arrays: list = []
        self._scalars = [(k, np.zeros((), v.type.dtype.np)) for k, v in enumerate(step.graph.inputs) if not v.type.shape]
        self.native_metrics = frozenset(id(m) for m in step.native_metrics)   # accumulated by the graph
        self._tuner = None   # the bound call's thread tuner, kept when a replaced array forces a new binding

    def _holder(self, name):
        """A function returning the parameter's current array (a Variable's or an optimizer slot's)."""
        if name in self.step.slot_params:
            path, slot = self.step.slot_params[name]
            return lambda: self.optimizer.slots[path][slot]
        var = self.step.variables[name]
        return lambda: var.value_array

    def params(self) -> dict:
        return {name: get() for name, get in zip(self.param_names, self._holders)}

    def run(self, feed: dict) -> dict:
        """Outputs by name (loss, predictions); native outputs are reused by the next run."""
        inputs = [self._cast(name, dt, feed[name]) for name, dt in self.input_types]
        if self._native:  # scalars (step counter, learning rate) go into fixed 0-d buffers: no new pointers
            for k, buf in self._scalars:
                buf[()] = inputs[k]
                inputs[k] = buf
        if not self._native:
            named = dict(zip(self.output_names, self.execute(inputs, self.params())))
            self._write_back(named)
            return named
        return dict(zip(self.output_names, self._bound_call()(inputs)))

    def _bound_call(self):
        arrays = [get() for get in self._holders]
        if self._bound is None or any(a is not b for a, b in zip(arrays, self._bound_arrays)):
            self._bound = self.execute.bind(dict(zip(self.param_names, arrays)))
            self._bound_arrays = arrays
            if hasattr(self._bound, "tuner"):   # (set_weights, assign: a new binding keeps the tuning)
                self._tuner = self._bound.tuner = self._tuner or self._bound.tuner
        return self._bound

    @staticmethod
    def _cast(name, dtype, array):
        if type(array) is np.ndarray and array.dtype == dtype and array.flags.c_contiguous:
            return array
        a = np.asarray(array, dtype=dtype)
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)  # (ascontiguousarray makes 0-d 1-d)

    def _write_back(self, named: dict):
        """Reference backend: copy each update into its parameter's array (the same array stays)."""
        current = self.params()
        for out_name, param in self.updates.items():
            np.copyto(current[param], named.pop(out_name))
        weight_epoch.bump()   # packed copies of these weights (passes/f32_prepack.py) are stale
