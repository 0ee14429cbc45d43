"""Recurrent layers: SimpleRNN, GRU, LSTM (Keras 3 semantics), each one `scan` over the timesteps.

The step is traced once into the scan's body region (so IR size and compile time do not grow
with the number of timesteps); the weights it reads come in as the scan's constants, since a
region is closed. Sequences stay batch-major (batch, timesteps, features): the scan runs over
axis 1 (see ir/ops/control.py for why).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, TensorType

from .. import activations, constraints, initializers, ops, regularizers
from ..tensor import KTensor, TraceContext, apply, tracing
from . import arguments
from .base import Layer
from .core import as_float, layer_seed, random_uniform
from .masking import check_mask
from .rnn_state import StatefulRNN
from .serial import ser_act, ser_con, ser_init, ser_reg


class _RNN(StatefulRNN, Layer):
    """Shared machinery: weights (kernel, recurrent_kernel, bias), input projection, the scan, outputs.

    Subclasses set GATES (how many units-wide blocks the kernels hold), STATES (1 or 2) and implement
    _step(x_t, states, consts) -> new states, where x_t is this step's input projection (bias already
    added) and consts holds the loop invariants of _loop_constants() (weights, sliced once per call
    rather than once per step), all seen inside the step as inputs of the scan's body.
    """
    GATES = 1
    STATES = 1
    is_recurrent = True     # what Bidirectional accepts
    _time_ordered = False   # set by Bidirectional: a backward layer's sequence output stays in time order

    @property
    def state_count(self) -> int:
        return self.STATES

    def _state_sizes(self) -> list:
        return [self.units] * self.STATES

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._init_stateful(stateful)
        self.units = arguments.integer(self, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = min(1.0, max(0.0, float(dropout)))   # clipped to [0, 1] as Keras does
        self.recurrent_dropout = min(1.0, max(0.0, float(recurrent_dropout)))
        self.zero_output_for_mask = False   # Bidirectional sets it when returning sequences, as Keras
        self.supports_masking = True
        self.seed = seed
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.unroll = bool(unroll)   # accepted for compatibility: kcompile always runs one scan

    # -- weights --------------------------------------------------------------------------------
    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of shape "
                             f"(batch, timesteps, features), got shape {input_shape}")
        self._build_weights(input_shape[-1])

    def _build_weights(self, features: int):
        width = self.GATES * self.units
        self.kernel = self.add_weight(shape=(features, width), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, width), initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint, name="recurrent_kernel")
        self.bias = self.add_weight(shape=self._bias_shape(), initializer=self._bias_init(),
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None

    def _bias_shape(self) -> tuple:
        return (self.GATES * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def _input_bias(self):
        return self.bias

    # -- the loop -------------------------------------------------------------------------------
    def call(self, sequences, initial_state=None, mask=None, training=False):
        seq = self._checked(sequences)
        mask = check_mask(self, mask, seq, 2)
        states, rows = self._initial_states(initial_state), None
        if self.stateful and states is None:   # Keras: the states the last call ended with
            states, rows = self._stateful_initial(seq)
        if states is None:  # Keras starts from zeros
            zero = np.zeros((), np.float32)
            states = [ops.broadcast_to(zero, (seq.ir_shape[0], self.units)) for _ in range(self.STATES)]
        drop = self._dropout_constants(step_template(seq) if training and self.dropout else None, states[0],
                                       training)
        inputs = {k: v for k, v in {"kernel": self.kernel, "input_bias": self._input_bias(), **drop}.items()
                  if v is not None}
        # before the scan, also for a run-time length T (native matmul takes T among its rows)
        proj = self._input_projection(seq, inputs, over_time=True)
        consts = {**self._loop_constants(), **{k: v for k, v in drop.items() if k.startswith("rec_mask")}}
        consts = {k: v for k, v in consts.items() if v is not None}
        xs = [proj] if mask is None else [proj, ops.cast(mask, "float32")]
        outs = apply("scan", *states, *xs, *consts.values(), num_carries=self.STATES, num_xs=len(xs), axis=1,
                     body=self._step_region(proj, mask is not None, states, consts),
                     reverse=self.go_backwards)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        finals = outs[:self.STATES]
        if self.stateful:
            self._stateful_update(finals, rows if rows is not None else self._stateful_initial(seq)[1])
        if not self.return_sequences:
            out = finals[0]
        elif self.go_backwards and not self._time_ordered:  # Keras lists the outputs in processing order, last timestep first
            out = reverse_time(self, outs[-1])
        else:
            out = outs[-1]
        return [out, *finals] if self.return_state else out

    def compute_mask(self, inputs, mask=None):
        """Keras 3: the sequences' mask when returning sequences; states carry none."""
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        return [out] + [None] * self.STATES if self.return_state else out

    def _step_region(self, proj, masked: bool, states, consts):
        """One step traced into the scan body: (states..., p_t, [mask_t], consts...) -> (new states..., [h]).

        p_t is this step's input projection x_t @ kernel + bias, computed for all timesteps before
        the scan as ONE matmul over (batch * timesteps) rows (and its gradients, dx and dkernel, as
        one matmul each after the backward scan): the step then holds only the recurrent h @ U and
        the gates, which is what the loop must run serially.
        A masked step keeps the old states and, as Keras, outputs the old h (zeros with
        zero_output_for_mask)."""
        b = GraphBuilder(f"{self.name}_step")
        ctx = TraceContext(b)

        def arg(name, t: TensorType):
            return KTensor(value=b.input(name, t), trace=ctx)
        hs = [arg(f"state{i}", s.ir_type) for i, s in enumerate(states)]
        p_t = arg("p_t", proj.ir_type.with_shape(proj.ir_shape[:1] + proj.ir_shape[2:]))
        m_t = arg("mask_t", TensorType(proj.ir_shape[:1], "f32")) if masked else None
        ks = {k: arg(k, v.ir_type) for k, v in consts.items()}
        with tracing(ctx), b.location(self.name):
            new = self._step(p_t, hs, ks)
            out = new[0]
            if m_t is not None:
                keep = ops.greater(ops.reshape(m_t, (-1,) + (1,) * (hs[0].ndim - 1)), 0.0)   # over a state's axes
                new = [ops.where(keep, n, h) for n, h in zip(new, hs)]
                out = ops.where(keep, out, 0.0) if self.zero_output_for_mask else new[0]
        ys = [out.value] if self.return_sequences else []
        names = [f"state{i}" for i in range(len(new))] + ["h"] * len(ys)
        return b.build([t.value for t in new] + ys, names)

    def _input_projection(self, x_t, ks, over_time=False):
        """x_t @ kernel + bias; in training with dropout, x_t times the (per-gate) dropout mask(s).
        over_time: x_t is the whole sequence (batch, timesteps, features); the masks (batch, features)
        are the same at every timestep, as Keras draws them."""
        mask = (lambda k: ops.expand_dims(ks[k], 1)) if over_time else (lambda k: ks[k])
        if "input_mask1" in ks:   # one mask per gate (Keras's implementation 1)
            proj = ops.concatenate([ops.matmul(ops.multiply(x_t, mask(f"input_mask{g}")), ks[f"kernel{g}"])
                                    for g in range(self.GATES)], axis=-1)
        elif "input_mask0" in ks:
            proj = ops.matmul(ops.multiply(x_t, mask("input_mask0")), ks["kernel"])
        else:
            proj = ops.matmul(x_t, ks["kernel"])
        return proj if "input_bias" not in ks else ops.add(proj, ks["input_bias"])

    def _recurrent_matmul(self, h, ks, key="recurrent_kernel"):
        """h @ ks[key]; in training with recurrent dropout, h times the (per-gate) mask(s) first."""
        w = ks[key]
        if "rec_mask1" in ks:
            u = self.units
            return ops.concatenate([ops.matmul(ops.multiply(h, ks[f"rec_mask{g}"]), w[:, g * u:(g + 1) * u])
                                    for g in range(w.ir_shape[1] // u)], axis=-1)
        if "rec_mask0" in ks:
            return ops.matmul(ops.multiply(h, ks["rec_mask0"]), w)
        return ops.matmul(h, w)

    def _dropout_count(self) -> int:
        """Keras: one mask per gate once recurrent_dropout is on (implementation 1), else one."""
        return self.GATES if self.recurrent_dropout and self.GATES > 1 else 1

    def _dropout_constants(self, x0, state, training) -> dict:
        """Dropout masks for the whole sequence, drawn once before the loop (Keras fixes them across
        timesteps): scaled keep masks of x_t's (x0's) and h's shapes, fed to the step as constants."""
        out, count = {}, self._dropout_count()
        seed = layer_seed(self, self.seed)
        if training and 0.0 < self.dropout < 1.0:
            out.update({f"input_mask{g}": _keep_mask(self, x0, self.dropout, seed) for g in range(count)})
            if count > 1:
                u = self.units
                out.update({f"kernel{g}": self.kernel[:, g * u:(g + 1) * u] for g in range(count)})
        if training and 0.0 < self.recurrent_dropout < 1.0:
            out.update({f"rec_mask{g}": _keep_mask(self, state, self.recurrent_dropout, seed + 1)
                        for g in range(count)})
        return out

    def _checked(self, sequences):
        """The input sequences (batch, timesteps, features) as floats, or a clear error."""
        shape = sequences.shape
        if sequences.ndim != 3:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of shape "
                             f"(batch, timesteps, features), got shape {shape}")
        if sequences.ir_shape[1] == 0:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs at least one timestep, got "
                             f"input shape {shape}")
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
                "bias_regularizer": ser_reg(self.bias_regularizer),
                "kernel_constraint": ser_con(self.kernel_constraint),
                "recurrent_constraint": ser_con(self.recurrent_constraint),
                "bias_constraint": ser_con(self.bias_constraint), "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": self.stateful,
                "unroll": self.unroll}


def step_template(seq):
    """Zeros of one step's shape (batch, features): what a dropout mask of x_t is drawn like (slicing
    x[:, 0] would need a static sequence length)."""
    return ops.broadcast_to(np.zeros((), np.float32), (seq.ir_shape[0],) + tuple(seq.ir_shape[2:]))


def reverse_time(layer, seq):
    """seq reversed along its time axis (axis 1), which must be static: there is no reverse op with a
    run-time length, so go_backwards with return_sequences needs a static sequence length."""
    steps = seq.ir_shape[1]
    if not isinstance(steps, int):
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): go_backwards=True with "
                         f"return_sequences=True needs a static number of timesteps, got shape {seq.shape} (a "
                         "Bidirectional layer does not: its backward half stays in time order)")
    return ops.take(seq, np.arange(steps - 1, -1, -1), axis=1)


def _keep_mask(layer, template, rate: float, seed: int):
    """Keras's dropout mask: 1/(1-rate) where kept, 0 where dropped (counter-based, as Dropout)."""
    keep = ops.greater_equal(random_uniform(layer, template, seed), rate)
    return ops.where(keep, 1.0 / (1.0 - rate), 0.0)


class SimpleRNN(_RNN):
    """h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)."""

    def _step(self, x_t, states, consts):
        return [self.activation(ops.add(x_t, self._recurrent_matmul(states[0], consts)))]


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
        return self._gates(ops.add(x_t, self._recurrent_matmul(states[0], consts)), states)

    def _gates(self, z, states):
        """The new (h, c) from the pre-activations z (gates i, f, c, o along the last axis)."""
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
        if self.reset_after:
            rec_h = ops.multiply(r, rec_h)
        else:   # the candidate's recurrent dropout mask is the third (Keras's rec_dp_mask[2])
            h_h = h if "rec_mask2" not in consts else ops.multiply(h, consts["rec_mask2"])
            rec_h = ops.matmul(ops.multiply(r, h_h), consts["kernel_h"])
        new_h = ops.multiply(ops.subtract(1.0, z), self.activation(ops.add(x_h, rec_h)))
        return [ops.add(ops.multiply(z, h), new_h)]

    def _recurrent_parts(self, h, consts) -> list:
        """The recurrent contributions to z, r (and h when reset_after)."""
        if self.reset_after:
            inner = self._recurrent_matmul(h, consts)
            return ops.split(inner if "bias" not in consts else ops.add(inner, consts["bias"]), 3, axis=-1)
        return [*ops.split(self._recurrent_matmul(h, consts, "kernel_zr"), 2, axis=-1), None]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": ser_act(self.recurrent_activation),
                "reset_after": self.reset_after}

