"""RNN(cell): any cell (LSTMCell, GRUCell, SimpleRNNCell, a list of cells, or a user Layer with
state_size and call(inputs, states)) run over the timesteps as one `scan` (Keras 3 semantics).

The cell's step is traced once into the scan body under a RegionTrace, so the weights it reads
become the scan's constants. Masked steps keep the old states and output the old first state
(zeros with zero_output_for_mask), as keras/src/backend/jax/rnn.py does; dropout masks of the
built-in cells are drawn once before the loop (Keras fixes them across timesteps).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, TensorType

from .. import ops
from ..tensor import apply, tracing
from ..variables import name_scope
from .base import Layer
from .core import as_float
from .masking import check_mask
from .nodes import flatten
from .recurrent import GRU, LSTM, SimpleRNN, reverse_time, step_template
from .region_trace import RegionTrace, body_input
from .rnn_state import StatefulRNN


def _sizes(state_size) -> list:
    """A cell's state sizes as a list (an int is one state)."""
    return list(state_size) if isinstance(state_size, (list, tuple)) else [state_size]


def _check_cell(owner: str, cell):
    if not callable(getattr(cell, "call", None)) or getattr(cell, "state_size", None) is None:
        raise ValueError(f"{owner}: a cell must be a layer with call(inputs, states) and a state_size attribute, "
                         f"got {type(cell).__name__}")


def _build_cell(cell, step_shape):
    if isinstance(cell, Layer) and not cell.built:
        with name_scope(cell.name):
            cell.build(tuple(step_shape))
        cell.built = True


def _output_size(cell) -> int:
    size = getattr(cell, "output_size", None)
    return int(size) if size is not None else int(flatten(_sizes(cell.state_size))[0])


class StackedRNNCells(Layer):
    """Cells run one after the other within a step; the states are one list per cell."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        for cell in cells:
            _check_cell(f"StackedRNNCells '{self.name}'", cell)
        self.cells = list(cells)

    @property
    def state_size(self) -> list:
        return [_sizes(c.state_size) for c in self.cells]

    @property
    def output_size(self) -> int:
        return _output_size(self.cells[-1])

    def build(self, input_shape):
        shape = tuple(input_shape)
        for cell in self.cells:
            _build_cell(cell, shape)
            shape = shape[:1] + (_output_size(cell),)

    def call(self, inputs, states, training=False):
        new_states = []
        for cell, s in zip(self.cells, states):
            inputs, new = cell(inputs, list(s), training=training)
            new_states.append(list(new) if isinstance(new, (list, tuple)) else [new])
        return inputs, new_states

    def get_config(self):
        from ..config_tree import serialize_layer
        return {**super().get_config(), "cells": [serialize_layer(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config):
        from ..config_tree import deserialize_layer
        return cls(**{**config, "cells": [deserialize_layer(c, {}) for c in config["cells"]]})


class RNN(StatefulRNN, Layer):
    is_recurrent = True     # what Bidirectional accepts
    _time_ordered = False   # set by Bidirectional (see LSTM)

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        _check_cell(f"RNN '{self.name}'", cell)
        self._init_stateful(stateful)
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.unroll = bool(go_backwards), bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.supports_masking = True

    @property
    def state_count(self) -> int:
        return len(flatten(_sizes(self.cell.state_size)))

    def _state_sizes(self) -> list:
        return [int(s) for s in flatten(_sizes(self.cell.state_size))]

    def build(self, input_shape):
        self._check_shape(input_shape)
        _build_cell(self.cell, (input_shape[0],) + tuple(input_shape[2:]))

    def _check_shape(self, shape):
        if len(shape) != 3:
            raise ValueError(f"layer '{self.name}' (RNN) expects inputs of shape (batch, timesteps, features), "
                             f"got shape {tuple(shape)}")
        if shape[1] == 0:
            raise ValueError(f"layer '{self.name}' (RNN) needs at least one timestep, got input shape "
                             f"{tuple(shape)}")

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self._check_shape(sequences.shape)
        seq = as_float(sequences)
        mask = check_mask(self, mask, seq, 2)
        rows = None
        if self.stateful and initial_state is None:   # Keras: the states the last call ended with
            states, rows = self._stateful_initial(seq)
        else:
            states = self._initial_states(seq, initial_state)
        drop = self._dropout_constants(seq, states, training)
        carry_out = not self.return_sequences   # the last output rides along as one more carry
        xs = [seq] if mask is None else [seq, ops.cast(mask, "float32")]
        body, captured = self._step_region(seq, mask is not None, states, drop, carry_out, training)
        zero = np.zeros((), np.float32)
        extra = [ops.broadcast_to(zero, (seq.ir_shape[0], _output_size(self.cell)))] if carry_out else []
        outs = apply("scan", *states, *extra, *xs, *flatten([list(d.values()) for d in drop]), *captured,
                     body=body, num_carries=len(states) + len(extra), num_xs=len(xs), axis=1,
                     reverse=self.go_backwards)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        finals = outs[:len(states)]
        if self.stateful:
            self._stateful_update(finals, rows if rows is not None else self._stateful_initial(seq)[1])
        if carry_out:
            out = outs[len(states)]
        elif self.go_backwards and not self._time_ordered:   # Keras: processing order
            out = reverse_time(self, outs[-1])
        else:
            out = outs[-1]
        return [out, *self._pack(finals)] if self.return_state else out

    def _pack(self, flat) -> list:
        """Flat states in the cell's structure: a list, or one list per stacked cell."""
        sizes = _sizes(self.cell.state_size)
        if not any(isinstance(s, (list, tuple)) for s in sizes):
            return list(flat)
        out, i = [], 0
        for s in sizes:
            n = len(_sizes(s))
            out.append(list(flat[i:i + n]))
            i += n
        return out

    def _initial_states(self, seq, initial_state) -> list:
        sizes = [int(s) for s in flatten(_sizes(self.cell.state_size))]
        if initial_state is None:
            zero = np.zeros((), np.float32)
            return [ops.broadcast_to(zero, (seq.ir_shape[0], s)) for s in sizes]
        given = [as_float(ops.convert_to_tensor(s)) for s in flatten(list(initial_state) if isinstance(
            initial_state, (list, tuple)) else [initial_state])]
        if len(given) != len(sizes) or any(g.ndim != 2 or g.ir_shape[1] != s for g, s in zip(given, sizes)):
            raise ValueError(f"layer '{self.name}' (RNN) expects initial states of shapes "
                             f"{[(None, s) for s in sizes]}, got {[g.shape for g in given]}")
        return given

    def _dropout_constants(self, seq, states, training) -> list:
        """Per built-in cell, its dropout masks drawn once before the loop (dicts, in cell order)."""
        cells = self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]
        out, x0, i = [], step_template(seq) if training else None, 0
        for cell in cells:
            n = len(_sizes(cell.state_size))
            make = getattr(cell, "_dropout_constants", None)
            out.append(make(x0, states[i], training) if make is not None and training else {})
            if training:
                x0 = ops.broadcast_to(np.zeros((), np.float32), (seq.ir_shape[0], _output_size(cell)))
            i += n
        return out

    def _step_region(self, seq, masked, states, drop, carry_out, training):
        """The step traced into a closed body; returns it and the variables it captured (its last constants)."""
        b = GraphBuilder(f"{self.name}_step")
        ctx = RegionTrace(b, self.name, training)
        hs = [body_input(ctx, f"state{i}", s.ir_type) for i, s in enumerate(states)]
        prev = body_input(ctx, "out", TensorType((seq.ir_shape[0], _output_size(self.cell)))) if carry_out else None
        x_t = body_input(ctx, "x_t", seq.ir_type.with_shape(seq.ir_shape[:1] + seq.ir_shape[2:]))
        m_t = body_input(ctx, "mask_t", TensorType(seq.ir_shape[:1], "f32")) if masked else None
        cells = self.cell.cells if isinstance(self.cell, StackedRNNCells) else [self.cell]
        for j, (cell, d) in enumerate(zip(cells, drop)):
            cell._step_masks = {k: body_input(ctx, f"drop{j}_{k}", v.ir_type) for k, v in d.items()}
        try:
            with tracing(ctx), b.location(self.name):
                packed = self._pack(hs)
                out, new = self.cell(x_t, packed, training=training)
                new = flatten(list(new) if isinstance(new, (list, tuple)) else [new])
                self._check_step(hs, new, out, prev)
                if m_t is not None:
                    keep = ops.greater(ops.expand_dims(m_t, -1), 0.0)
                    old = packed[-1][0] if isinstance(packed[0], list) else packed[0]   # Keras's output_tm1
                    out = ops.where(keep, out, 0.0 if self.zero_output_for_mask else old)
                    new = [ops.where(keep, n, h) for n, h in zip(new, hs)]
        finally:
            for cell in cells:
                cell._step_masks = {}
        ctx.check_closed()
        results = [t.value for t in new] + [out.value]
        names = [f"state{i}" for i in range(len(new))] + ["out" if carry_out else "y"]
        return b.build(results, names), ctx.captured

    def _check_step(self, hs, new, out, prev):
        got, want = [t.ir_type for t in new], [h.ir_type for h in hs]
        if got != want:
            raise ValueError(f"layer '{self.name}' (RNN): the cell returned new states of types "
                             f"{[str(t) for t in got]}, expected {[str(t) for t in want]} (its state_size)")
        if prev is not None and out.ir_type != prev.ir_type:
            raise ValueError(f"layer '{self.name}' (RNN): the cell's output is {out.ir_type}, expected "
                             f"{prev.ir_type} (its output_size)")

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        return [out] + [None] * len(_sizes(self.cell.state_size)) if self.return_state else out

    def get_config(self):
        from ..config_tree import serialize_layer
        return {**super().get_config(), "cell": serialize_layer(self.cell), "return_sequences":
                self.return_sequences, "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll, "zero_output_for_mask": self.zero_output_for_mask}

    @classmethod
    def from_config(cls, config):
        from ..config_tree import deserialize_layer
        cell = config["cell"]
        cell = [deserialize_layer(c, {}) for c in cell] if isinstance(cell, list) else deserialize_layer(cell, {})
        return super().from_config({**config, "cell": cell})


_LAYER_ONLY = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll")


class _Cell:
    """Turns a recurrent layer class into its cell: one step's math on (batch, features) inputs."""
    is_recurrent = False
    _step_masks: dict = {}   # dropout masks as body inputs, set by RNN while it traces the step

    def build(self, input_shape):
        self._build_weights(input_shape[-1])

    @property
    def state_size(self):
        return [self.units] * self.STATES if self.STATES > 1 else self.units

    @property
    def output_size(self) -> int:
        return self.units

    def call(self, inputs, states, training=False):
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        ks = {"kernel": self.kernel, "input_bias": self._input_bias(), **self._loop_constants(),
              **self._step_masks}
        ks = {k: v for k, v in ks.items() if v is not None}
        new = self._step(self._input_projection(as_float(inputs), ks), states, ks)
        return new[0], new

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k not in _LAYER_ONLY}


class SimpleRNNCell(_Cell, SimpleRNN):
    pass


class LSTMCell(_Cell, LSTM):
    pass


class GRUCell(_Cell, GRU):
    pass
