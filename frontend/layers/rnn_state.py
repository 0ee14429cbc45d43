"""stateful=True for the recurrent layers (Keras 3): each batch starts from the states the previous
batch ended with, until reset_state().

The states are non-trainable Variables of shape (batch_size, size), kept out of the weights as Keras
keeps them (get_weights/set_weights/saving see the same list with or without stateful). They are
made when the layer is built on inputs of a static batch size (Input(batch_size=...) or
batch_shape=..., or an eager call's array); a dynamic batch is Keras's error. A graph holds them as
parameters of that static shape and the sequences have the symbolic batch N, so a call reads rows
0..N-1 with a gather and records the final states, scattered back into (batch_size, size), as state
updates: the fit and evaluate steps write them in place, predict assigns them after each batch, an
eager call assigns them at once. The batch a stateful model runs on must equal batch_size: checked
before every compiled step and predict batch (check_stateful_batch), naming the layer, as Keras.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..variables import Variable, name_scope
from .normalization import assign_state


class StatefulRNN:
    """Mixed into the recurrent layers: the state variables, their reads and updates, reset_state."""

    def _init_stateful(self, stateful):
        self.stateful = bool(stateful)
        self._states = None
        self._expected_batch_size = None

    def __call__(self, *args, **kwargs):
        """Make the states before the call: a functional call traces a scratch copy of its inputs, so
        the static batch size is read here, from the Inputs the sequences come from."""
        if self.stateful and self._states is None:
            seq = args[0] if args else kwargs.get("inputs", kwargs.get("sequences"))
            self._build_states(batch_of(seq), self._state_sizes())
        return super().__call__(*args, **kwargs)

    @property
    def states(self):
        """The state Variables (stateful layers, once built), else None."""
        return self._states

    def _build_states(self, batch, sizes):
        if not self.stateful:
            return
        if self._states is not None:   # Keras: building again resets the states
            self.reset_state()
            return
        if not isinstance(batch, int):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}): when using `stateful=True` in a RNN, "
                             "the batch size must be static. Pass batch_size= (or batch_shape=) to the Input; "
                             f"found a dynamic batch size")
        with name_scope(self.name):
            self._states = [Variable(np.zeros((batch, s), np.float32), name=f"rnn_state_{i}" if i else "rnn_state",
                                     trainable=False) for i, s in enumerate(sizes)]
        self._expected_batch_size = batch

    def reset_state(self):
        """Zero the states (Keras 3); the arrays are replaced, so compiled steps rebind them."""
        for v in self._states or []:
            v.assign(np.zeros(v.shape, np.float32))

    reset_states = reset_state   # Keras's compatibility alias

    def _check_batch(self, batch):
        if self._expected_batch_size is not None and isinstance(batch, int) and batch != self._expected_batch_size:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}): if an RNN is stateful, the batch size "
                             "of the input sequences must be the same as the batch size of the initial state. "
                             f"Expected batch size: {self._expected_batch_size}; received batch size: {batch}")

    def _stateful_initial(self, seq):
        """(initial states read from the variables, the row indices that read them)."""
        self._check_batch(seq.ir_shape[0])
        ones = ops.broadcast_to(np.ones((), np.float32), (seq.ir_shape[0],))
        rows = ops.cast(ops.subtract(ops.cumsum(ones, axis=0), 1.0), "int32")
        return [ops.take(v, rows, axis=0) for v in self._states], rows

    def _stateful_update(self, finals, rows):
        for v, final in zip(self._states, finals):
            assign_state(v, _scatter_rows(rows, final, v.shape))


def batch_of(x):
    """The static batch size of a layer's first argument (a tensor or an array), else None."""
    if hasattr(x, "_keras_history"):
        return static_batch(x)
    shape = np.shape(x) if x is not None and not isinstance(x, (list, dict)) else ()
    return int(shape[0]) if len(shape) else None


def _scatter_rows(rows, values, shape):
    from ..tensor import apply
    return apply("scatter_add", rows, values, shape=tuple(shape), axis=0)


def stateful_layers(layer) -> list:
    """Every built stateful recurrent layer in `layer` (a model), sublayers and wrapped layers included."""
    found, seen, todo = [], set(), [layer]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if getattr(item, "_states", None):
            found.append(item)
        todo.extend(getattr(item, "_sublayers", []))
    return found


def check_stateful_batch(model, batch: int):
    """Keras's error for a batch whose size is not the stateful layers' batch_size (before running)."""
    for layer in stateful_layers(model):
        layer._check_batch(int(batch))


def state_variables(model) -> dict:
    """path -> state Variable of every stateful layer in the model."""
    return {v.path: v for layer in stateful_layers(model) for v in layer.states}


def static_batch(tensor):
    """The batch size a tensor is known to have: an eager array's rows, or the batch_size of the Inputs
    a functional tensor comes from (when they all agree); None for a dynamic batch."""
    from .input_layer import InputLayer
    if getattr(tensor, "data", None) is not None:
        return int(np.shape(tensor.data)[0])
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    node = history[0]
    if isinstance(node.layer, InputLayer):
        return node.layer.batch_size
    sizes = {static_batch(t) for t in node.symbolic_inputs()}
    return sizes.pop() if len(sizes) == 1 else None


def assign_state_outputs(states: dict, names, outs) -> list:
    """Write a predict call's "state:<path>" outputs into their Variables (in place, so that compiled
    steps bound to the arrays see them); returns the model's own outputs."""
    kept = []
    for name, out in zip(names, outs):
        if name.startswith("state:") and name[len("state:"):] in states:
            np.copyto(states[name[len("state:"):]].value_array, out)
        else:
            kept.append(out)
    return kept
