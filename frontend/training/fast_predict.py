"""predict_on_batch / predict without Python in the way: a prepared native call per model.

The slow path (Trainer._predict_batch) standardizes the inputs, finds the cached executor, collects
the Variables' arrays by name and builds the call's pointer tables every time: about 100 us at
batch 1. After it has run once, the model keeps a PreparedPredict: the executor's CallPlan
(ir/call_plan.py, parameter pointers bound, workspaces per thread) stamped with
frontend.state_version. A call then checks the stamp (one compare) and the inputs' dtype, shape and
layout (a few compares), and calls native code. Anything else (a stale stamp, lists of Python
numbers, other dtypes, dict inputs, a predict_step override, the reference backend) takes the slow
path, which converts or raises the usual errors and then prepares a new plan.
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend import state_version


class PreparedPredict:
    __slots__ = ("version", "plan", "ninputs", "single")

    def __init__(self, version: int, plan, ninputs: int):
        self.version, self.plan, self.ninputs = version, plan, ninputs
        self.single = plan is not None and ninputs == 1   # plan.call1 applies

    def arrays(self, x):
        """x as the plan's input list, or None when it is not plain arrays in input order."""
        if type(x) is np.ndarray:
            return [x] if self.ninputs == 1 else None
        if type(x) in (list, tuple) and len(x) == self.ninputs:
            return x
        return None


def current(model) -> PreparedPredict | None:
    """The model's prepared call if it is up to date (else None)."""
    prepared = model.__dict__.get("_prepared_predict")
    if prepared is not None and prepared.version == state_version.current and prepared.plan is not None:
        return prepared
    return None


def call(model, x):
    """The outputs (a list) through the prepared call, or None: then take the slow path."""
    prepared = current(model)
    if prepared is None:
        return None
    arrays = prepared.arrays(x)
    return None if arrays is None else prepared.plan(arrays)


def prepare(model) -> None:
    """After a slow call: (re)build the prepared call if the state changed since the last one."""
    version = state_version.current   # read first: a change during the build leaves the stamp stale
    prepared = model.__dict__.get("_prepared_predict")
    if prepared is not None and prepared.version == version:
        return
    plan = None
    if not model._overrides("predict_step"):
        execute, graph = model._predict_executor()
        if hasattr(execute, "plan"):   # the native JIT (not the reference backend, not per-length code)
            variables = {v.path: v for v in model.weights}
            plan = execute.plan({n: variables[n].value_array for n in graph.param_names if n in variables})
        ninputs = len(graph.inputs)
    else:
        ninputs = 0
    model.__dict__["_prepared_predict"] = PreparedPredict(version, plan, ninputs)
