"""Recurrent layers: SimpleRNN, GRU, LSTM (Keras 3 semantics), each one `scan` over the timesteps.

The step is traced once into the scan's body region (so IR size and compile time do not grow
with the number of timesteps); the weights it reads come in as the scan's constants, since a
region is closed. Sequences stay batch-major (batch, timesteps, features): the scan runs over
axis 1 (see ir/ops/control.py for why).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, TensorType

from .. import activations, initializers, ops, regularizers
from ..tensor import KTensor, TraceContext, apply, tracing
from . import arguments
from .base import Layer
from .core import as_float
from .serial import ser_act, ser_init, ser_reg


class _RNN(Layer):
    """Shared machinery: weights (kernel, recurrent_kernel, bias), input projection, the scan, outputs.

    Subclasses set GATES (how many units-wide blocks the kernels hold), STATES (1 or 2) and implement
    _step(x_t, states, consts) -> new states, where x_t is this step's input projection (bias already
    added) and consts holds the loop invariants of _loop_constants() (weights, sliced once per call
    rather than once per step), all seen inside the step as inputs of the scan's body.
    """
    GATES = 1
    STATES = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        what = f"{type(self).__name__} '{self.name}'"
        if dropout or recurrent_dropout:
            raise NotImplementedError(f"{what}: dropout and recurrent_dropout are not supported "
                                      f"(got dropout={dropout}, recurrent_dropout={recurrent_dropout})")
        if stateful:
            raise NotImplementedError(f"{what}: stateful=True is not supported")
        if any(c is not None for c in (kernel_constraint, recurrent_constraint, bias_constraint)):
            raise NotImplementedError(f"{what}: weight constraints are not supported")
        self.units = arguments.integer(self, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.seed = seed
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.unroll = bool(unroll)   # accepted for compatibility: kcompile always runs one scan

    # -- weights --------------------------------------------------------------------------------
    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of shape "
                             f"(batch, timesteps, features), got shape {input_shape}")
        if not isinstance(input_shape[1], int) or input_shape[1] < 1:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs a static number of "
                             f"timesteps >= 1, got input shape {input_shape}")
        width = self.GATES * self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], width), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, width), initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer, name="recurrent_kernel")
        self.bias = self.add_weight(shape=self._bias_shape(), initializer=self._bias_init(),
                                    regularizer=self.bias_regularizer, name="bias") if self.use_bias else None

    def _bias_shape(self) -> tuple:
        return (self.GATES * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def _input_bias(self):
        return self.bias

    # -- the loop -------------------------------------------------------------------------------
    def call(self, sequences, initial_state=None, mask=None, training=False):
        if mask is not None:
            raise NotImplementedError(f"{type(self).__name__} '{self.name}': masking is not supported")
        seq = self._checked(sequences)
        states = self._initial_states(initial_state)
        if states is None:  # Keras starts from zeros
            zero = np.zeros((), np.float32)
            states = [ops.broadcast_to(zero, (seq.ir_shape[0], self.units)) for _ in range(self.STATES)]
        consts = {"kernel": self.kernel, "input_bias": self._input_bias(), **self._loop_constants()}
        consts = {k: v for k, v in consts.items() if v is not None}
        outs = apply("scan", *states, seq, *consts.values(), body=self._step_region(seq, states, consts),
                     num_carries=self.STATES, axis=1, reverse=self.go_backwards)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        finals = outs[:self.STATES]
        if not self.return_sequences:
            out = finals[0]
        elif self.go_backwards:  # Keras lists the outputs in processing order, last timestep first
            out = ops.take(outs[-1], np.arange(seq.ir_shape[1] - 1, -1, -1), axis=1)
        else:
            out = outs[-1]
        return [out, *finals] if self.return_state else out

    def _step_region(self, seq, states, consts):
        """One step traced into the scan body: (states..., x_t, consts...) -> (new states..., [h]).

        The input projection x_t @ kernel (+ bias) runs inside the step, not as one matmul over
        all timesteps before the scan: the scan then reads x_t (features wide) rather than a
        4*units-wide projection per step, which for long sequences no longer fits in cache and
        is read with a large stride (batch-major)."""
        b = GraphBuilder(f"{self.name}_step")
        ctx = TraceContext(b)

        def arg(name, t: TensorType):
            return KTensor(value=b.input(name, t), trace=ctx)
        hs = [arg(f"state{i}", s.ir_type) for i, s in enumerate(states)]
        x_t = arg("x_t", seq.ir_type.with_shape(seq.ir_shape[:1] + seq.ir_shape[2:]))
        ks = {k: arg(k, v.ir_type) for k, v in consts.items()}
        with tracing(ctx), b.location(self.name):
            proj = ops.matmul(x_t, ks["kernel"])
            new = self._step(proj if "input_bias" not in ks else ops.add(proj, ks["input_bias"]), hs, ks)
        ys = [new[0].value] if self.return_sequences else []
        names = [f"state{i}" for i in range(len(new))] + ["h"] * len(ys)
        return b.build([t.value for t in new] + ys, names)

    def _checked(self, sequences):
        """The input sequences (batch, timesteps, features) as floats, or a clear error."""
        shape = sequences.shape
        if sequences.ndim != 3:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of shape "
                             f"(batch, timesteps, features), got shape {shape}")
        if not isinstance(sequences.ir_shape[1], int) or sequences.ir_shape[1] < 1:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs a static number of "
                             f"timesteps >= 1, got input shape {shape}")
        if sequences.ir_shape[2] != self.kernel.shape[0]:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {self.kernel.shape[0]} "
                             f"features per timestep, got input shape {shape}")
        return as_float(sequences)

    def _initial_states(self, initial_state):
        if initial_state is None:
            return None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        states = [ops.convert_to_tensor(s) for s in states]  # NumPy arrays given eagerly
        if len(states) != self.STATES:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {self.STATES} initial "
                             f"state tensor(s), got {len(states)}")
        for s in states:
            if s.ndim != 2 or s.ir_shape[1] != self.units:
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}): an initial state must have "
                                 f"shape (batch, {self.units}), got {s.shape}")
        return [as_float(s) for s in states]

    def _loop_constants(self) -> dict:
        return {"recurrent_kernel": self.recurrent_kernel}

    # -- config ---------------------------------------------------------------------------------
    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": ser_act(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": ser_init(self.kernel_initializer),
                "recurrent_initializer": ser_init(self.recurrent_initializer),
                "bias_initializer": ser_init(self.bias_initializer),
                "kernel_regularizer": ser_reg(self.kernel_regularizer),
                "recurrent_regularizer": ser_reg(self.recurrent_regularizer),
                "bias_regularizer": ser_reg(self.bias_regularizer), "dropout": 0.0, "recurrent_dropout": 0.0,
                "seed": self.seed, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": False,
                "unroll": self.unroll}


class SimpleRNN(_RNN):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    def _step(self, x_t, states, consts):
        return [self.activation(ops.add(x_t, ops.matmul(states[0], consts["recurrent_kernel"])))]


class LSTM(_RNN):
    """Gates i, f, c, o in that order along the kernels' last axis; states (h, c)."""
    GATES = 4
    STATES = 2

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True,
                 **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, u = self.bias_initializer, self.units

        def forget_bias_one(shape, dtype=None):   # Keras: bias_init for i, ones for f, bias_init for c, o
            first = np.asarray(init((u,), dtype=dtype))
            return np.concatenate([first, np.ones_like(first), init((2 * u,), dtype=dtype)])
        return forget_bias_one

    def _step(self, x_t, states, consts):
        z = ops.add(x_t, ops.matmul(states[0], consts["recurrent_kernel"]))
        zi, zf, zc, zo = ops.split(z, 4, axis=-1)
        i, o = self.recurrent_activation(zi), self.recurrent_activation(zo)
        new_c = ops.add(ops.multiply(self.recurrent_activation(zf), states[1]), ops.multiply(i, self.activation(zc)))
        return [ops.multiply(o, self.activation(new_c)), new_c]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": ser_act(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class GRU(_RNN):
    """Gates z (update), r (reset), h (candidate) in that order; reset_after=True (Keras 3 default) keeps a
    separate recurrent bias (bias shape (2, 3*units)) and applies r after the recurrent matmul."""
    GATES = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", reset_after=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def _bias_shape(self) -> tuple:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _input_bias(self):
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def _loop_constants(self) -> dict:
        u = self.units
        if self.reset_after:
            return {"recurrent_kernel": self.recurrent_kernel, "bias": self.bias[1] if self.use_bias else None}
        return {"kernel_zr": self.recurrent_kernel[:, :2 * u], "kernel_h": self.recurrent_kernel[:, 2 * u:]}

    def _step(self, x_t, states, consts):
        x_z, x_r, x_h = ops.split(x_t, 3, axis=-1)
        h = states[0]
        rec_z, rec_r, rec_h = self._recurrent_parts(h, consts)
        z = self.recurrent_activation(ops.add(x_z, rec_z))
        r = self.recurrent_activation(ops.add(x_r, rec_r))
        rec_h = ops.multiply(r, rec_h) if self.reset_after else ops.matmul(ops.multiply(r, h), consts["kernel_h"])
        new_h = ops.multiply(ops.subtract(1.0, z), self.activation(ops.add(x_h, rec_h)))
        return [ops.add(ops.multiply(z, h), new_h)]

    def _recurrent_parts(self, h, consts) -> list:
        """The recurrent contributions to z, r (and h when reset_after)."""
        if self.reset_after:
            inner = ops.matmul(h, consts["recurrent_kernel"])
            return ops.split(inner if "bias" not in consts else ops.add(inner, consts["bias"]), 3, axis=-1)
        return [*ops.split(ops.matmul(h, consts["kernel_zr"]), 2, axis=-1), None]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": ser_act(self.recurrent_activation),
                "reset_after": self.reset_after}

