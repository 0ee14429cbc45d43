"""StateTrace: the trace kc.function records into, with Python state threaded through the graph.

A state cell is a Variable (weights, metric totals, the optimizer's iteration count) or an optimizer
slot (NumPy arrays in `optimizer.slots`). The first read of a cell makes it a graph parameter; a write
(Variable.assign*, optimizer updates, BatchNormalization statistics, Metric.update_state/reset_state)
makes the written Value the cell's current one, which later reads see. When the trace ends every
written cell is an output the caller stores back, in place where native code can write it.

Values that change between calls without being graph state are fed as extra inputs: the optimizers'
learning rates (schedules included) and one counter per random draw (dropout), taken from the same
eager counter as eager draws so a compiled step draws exactly the masks eager execution would.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from kcompile.ir import TensorType, Value, dtype as to_dtype, f32, i64

from . import tensor as T


class Cell:
    """One piece of state: its graph parameter (an input for scalars), its latest Value, and get/set."""

    def __init__(self, name: str, param: Value, get, set):
        self.name, self.param, self.current = name, param, param
        self.get, self.set = get, set
        self.reads: list = []   # every Value the cell was read as (a tape differentiates through all)

    @property
    def written(self) -> bool:
        return self.current is not self.param


class _NoSeedShift(dict):
    """Each random draw gets its own counter input (as eager draws do), so seeds need no per-use shift."""

    def get(self, key, default=None):
        return 0


class StateTrace(T.TraceContext):
    """A TraceContext whose Variable and optimizer-slot reads/writes become graph state."""

    records_state = True

    def __init__(self, builder, function_name: str, allow_new_variables: bool):
        super().__init__(builder, training=False)
        self.function_name = function_name
        self.allow_new_variables = allow_new_variables
        self.cells: dict = {}      # key -> Cell
        self.keep: list = []       # owners of id()-keys, held so the ids stay unique
        self.feeds: list = []      # (input Value, callable giving its value at call time)
        self.random_draws = 0
        self.seed_uses = _NoSeedShift()
        self._names: set = set()
        self.values_allowed = False   # True while kcompile itself reads initial values (optimizer.build)

    # -- cells -------------------------------------------------------------------------------
    def cell(self, key, name: str, get, set, owner) -> Cell:
        found = self.cells.get(key)
        if found is None:
            unique, k = name, 1
            while unique in self._names:
                k += 1
                unique = f"{name}_{k}"
            self._names.add(unique)
            array = np.asarray(get())
            if array.ndim == 0:   # scalars travel as inputs: a bound native call would hold a 1-d copy
                value = self.feed("__state", TensorType((), to_dtype(array.dtype)), get)
            else:
                value = self.builder.param(unique, array)
            found = Cell(unique, value, get, set)
            self.cells[key] = found
            self.keep.append(owner)
        return found

    def variable_cell(self, variable) -> Cell:
        def set_value(a, v=variable):
            v.assign(a)
        return self.cell(id(variable), variable.path, lambda v=variable: v.data, set_value, variable)

    def slot_cell(self, optimizer, path: str, slot: str) -> Cell:
        def set_value(a, o=optimizer):
            o.slots[path][slot] = a
        return self.cell((id(optimizer), path, slot), optimizer.slot_param_name(slot, path),
                         lambda o=optimizer: o.slots[path][slot], set_value, optimizer)

    def param_for(self, variable) -> Value:
        """A Variable read inside the function: its latest Value in this trace."""
        c = self.variable_cell(variable)
        c.reads.append(c.current)
        return c.current

    def assign_variable(self, variable, value):
        t = value if isinstance(value, T.KTensor) else T.convert_to_tensor(np.asarray(value))
        v = T.traced_value(self, t)
        want = variable.data.dtype
        if v.type.dtype.np != want:
            v = self.builder.op("cast", v, dtype=T.keras_dtype(want))
        if tuple(v.type.shape) != variable.data.shape:
            raise ValueError(f"Variable '{variable.path}': cannot assign shape {tuple(v.type.shape)} to shape "
                             f"{variable.data.shape} (inside kc.function '{self.function_name}')")
        self.variable_cell(variable).current = v

    def combined(self, variable, op: str, delta) -> T.KTensor:
        """variable (op) delta, for assign_add/assign_sub, in the variable's dtype."""
        d = delta if isinstance(delta, T.KTensor) else T.convert_to_tensor(np.asarray(delta, variable.data.dtype))
        if d.ir_type.dtype.np != variable.data.dtype:
            d = T.apply("cast", d, dtype=T.keras_dtype(variable.data.dtype))
        return T.apply(op, variable, d)

    def created(self, variable):
        if not self.allow_new_variables:
            raise ValueError(f"kc.function '{self.function_name}' created Variable '{variable.path}' while "
                             "retracing: as tf.function, variables may only be created on the first call; "
                             "create them outside the function (or build the model/optimizer first)")

    def refuse_value(self, tensor):
        if self.values_allowed:
            return
        raise T.TracedValueError(f"the value of {tensor!r} is not known while kc.function "
                                 f"'{self.function_name}' is being traced")

    # -- values fed at call time ---------------------------------------------------------------
    def feed(self, name: str, type: TensorType, value) -> Value:
        v = self.builder.input(f"{name}{len(self.feeds)}", type)
        self.feeds.append((v, value))
        return v

    def counter(self, who: str) -> Value:
        """The counter of one random draw: the eager counter's next value at call time."""
        from .layers.core import _EagerCounter
        k = self.random_draws
        self.random_draws += 1
        return self.feed("__random", TensorType((), i64), lambda: np.int64(_EagerCounter.value + k + 1))

    def learning_rate(self, optimizer) -> Value:
        return self.feed("__learning_rate", TensorType((), f32), lambda: np.float32(optimizer.learning_rate))


@contextmanager
def initial_values(ctx: StateTrace):
    """Let kcompile read Variables' current (initial) values while tracing, e.g. to create optimizer slots."""
    saved, ctx.values_allowed = ctx.values_allowed, True
    try:
        yield
    finally:
        ctx.values_allowed = saved


def active() -> StateTrace | None:
    ctx = T.current_trace()
    return ctx if isinstance(ctx, StateTrace) else None


def trace_of(tensors) -> StateTrace | None:
    """The StateTrace that traced tensors belong to (or the active one)."""
    for t in tensors:
        if isinstance(t, T.KTensor) and t.is_traced:
            return t.trace if isinstance(t.trace, StateTrace) else None
    return active()
