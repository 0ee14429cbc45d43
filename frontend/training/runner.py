"""Run a step graph on one batch: feed inputs and current variable values, write the updates back."""
from __future__ import annotations

import numpy as np

from .backend import make_executor


class StepRunner:
    """One compiled step graph plus the Variables and optimizer slots it reads and updates."""

    def __init__(self, step, backend: str, optimizer=None):
        self.step = step
        self.graph = step.graph
        self.optimizer = optimizer
        self.execute = make_executor(step.graph, backend)
        self.input_types = {v.name: v.type for v in step.graph.inputs}

    def params(self) -> dict:
        values = {path: var.numpy() for path, var in self.step.variables.items()}
        for name, (path, slot) in self.step.slot_params.items():
            values[name] = self.optimizer.slots[path][slot]
        return values

    def run(self, feed: dict) -> dict:
        inputs = [self._cast(name, feed[name]) for name in self.input_types]
        outs = self.execute(inputs, self.params())
        named = dict(zip(self.graph.output_names, outs))
        self._write_back(named)
        return named

    def _cast(self, name, array):
        a = np.asarray(array, dtype=self.input_types[name].dtype.np)
        return a if a.flags.c_contiguous else np.ascontiguousarray(a)  # (ascontiguousarray makes 0-d 1-d)

    def _write_back(self, named: dict):
        for name, value in named.items():
            if not name.startswith("update:"):
                continue
            target = name[len("update:"):]
            if target in self.step.slot_params:
                path, slot = self.step.slot_params[target]
                self.optimizer.slots[path][slot] = value
            else:
                self.step.variables[target].assign(value)
