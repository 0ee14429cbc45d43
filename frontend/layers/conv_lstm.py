"""ConvLSTM1D/2D/3D (Keras 3): an LSTM whose kernels are convolutions, one `scan` over the timesteps.

The step (the LSTM's, traced once into the scan body) convolves x_t with the kernel (the layer's
strides, padding and dilation) and h with the recurrent kernel (stride 1, "same"), all four gates at
once (kernel (k..., in, 4*filters), gates i, f, c, o along the last axis, as Keras), through
kc.ops.conv: so 1-D, 2-D and 3-D come from one class, natively, in ONNX and with gradients.
channels_first transposes at the layer boundary. Not supported (clear errors): dropout,
recurrent_dropout and stateful=True.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir.ops.nn import conv_geometry

from .. import ops
from ..tensor import apply
from . import arguments
from .core import as_float
from .data_format import standardize_data_format
from .masking import check_mask
from .recurrent import LSTM, reverse_time
from .serial import ser_act


class _ConvLSTM(LSTM):
    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 dropout=0.0, recurrent_dropout=0.0, stateful=False, **kwargs):
        kind = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"layer '{kwargs.get('name', kind)}' ({kind}): argument `filters` must be a positive "
                             f"integer, got {filters!r}")
        super().__init__(int(filters), **kwargs)
        self.filters = int(filters)
        self.kernel_size = arguments.int_tuple(self, "kernel_size", kernel_size, self.rank)
        self.strides = arguments.int_tuple(self, "strides", strides, self.rank)
        self.padding = arguments.choice(self, "padding", padding, ("valid", "same"))
        self.data_format = standardize_data_format(data_format, self.name)
        self.dilation_rate = arguments.int_tuple(self, "dilation_rate", dilation_rate, self.rank)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"layer '{self.name}' ({kind}): strides > 1 is not supported with dilation_rate > 1, "
                             f"got strides={self.strides} and dilation_rate={self.dilation_rate}")
        if dropout or recurrent_dropout or stateful:
            raise NotImplementedError(f"layer '{self.name}' ({kind}): dropout, recurrent_dropout and stateful=True "
                                      "are not supported")

    def build(self, input_shape):
        if len(input_shape) != self.rank + 3:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of rank {self.rank + 3} "
                             f"(batch, timesteps, spatial..., channels), got shape {tuple(input_shape)}")
        channels = input_shape[2] if self.data_format == "channels_first" else input_shape[-1]
        width = 4 * self.filters
        self.kernel = self.add_weight(shape=self.kernel_size + (channels, width), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=self.kernel_size + (self.filters, width),
                                                initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint, name="recurrent_kernel")
        self.bias = self.add_weight(shape=(width,), initializer=self._bias_init(), regularizer=self.bias_regularizer,
                                    constraint=self.bias_constraint, name="bias") if self.use_bias else None

    def call(self, sequences, initial_state=None, mask=None, training=False):
        seq = self._sequences(sequences)
        mask = check_mask(self, mask, seq, 2)
        states = self._initial_states(initial_state)
        if states is None:   # Keras starts from zeros of the input conv's output shape
            zero = np.zeros((), np.float32)
            states = [ops.broadcast_to(zero, (seq.ir_shape[0], *self._out_spatial(seq), self.filters))] * 2
        consts = {k: v for k, v in (("kernel", self.kernel), ("bias", self.bias),
                                    ("recurrent_kernel", self.recurrent_kernel)) if v is not None}
        xs = [seq] if mask is None else [seq, ops.cast(mask, "float32")]
        outs = list(apply("scan", *states, *xs, *consts.values(), num_carries=2, num_xs=len(xs), axis=1,
                          body=self._step_region(seq, mask is not None, states, consts), reverse=self.go_backwards))
        finals = outs[:2]
        if not self.return_sequences:
            out = finals[0]
        elif self.go_backwards and not self._time_ordered:
            out = reverse_time(self, outs[-1])
        else:
            out = outs[-1]
        out, finals = self._to_format(out, 1 if self.return_sequences else 0), [self._to_format(f, 0) for f in finals]
        return [out, *finals] if self.return_state else out

    def _step(self, x_t, states, consts):
        z = ops.conv(x_t, consts["kernel"], self.strides, self.padding, dilation_rate=self.dilation_rate)
        if "bias" in consts:
            z = ops.add(z, consts["bias"])
        z = ops.add(z, ops.conv(states[0], consts["recurrent_kernel"], 1, "same"))
        return self._gates(z, states)

    def _sequences(self, sequences):
        if sequences.ndim != self.rank + 3:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of rank {self.rank + 3} "
                             f"(batch, timesteps, spatial..., channels), got shape {sequences.shape}")
        seq = as_float(sequences)
        if self.data_format == "channels_first":   # (N, T, C, S...) -> (N, T, S..., C)
            seq = ops.transpose(seq, (0, 1, *range(3, seq.ndim), 2))
        if seq.ir_shape[-1] != self.kernel.shape[-2]:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects {self.kernel.shape[-2]} input "
                             f"channels, got input shape {sequences.shape}")
        return seq

    def _out_spatial(self, seq) -> tuple:
        sizes = [conv_geometry(n, k, s, d, self.padding)[0] for n, k, s, d in
                 zip(seq.ir_shape[2:-1], self.kernel_size, self.strides, self.dilation_rate)]
        if min(sizes) <= 0:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}): input spatial size "
                             f"{tuple(seq.ir_shape[2:-1])} is too small for kernel {self.kernel_size}")
        return tuple(sizes)

    def _initial_states(self, initial_state):
        if initial_state is None:
            return None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != 2:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects 2 initial state tensors, "
                             f"got {len(states)}")
        fmt = self.data_format
        return [as_float(s if fmt != "channels_first" else ops.transpose(s, (0, *range(2, s.ndim), 1)))
                for s in map(ops.convert_to_tensor, states)]

    def _to_format(self, y, time_axes: int):
        if self.data_format != "channels_first":
            return y
        lead = 1 + time_axes
        return ops.transpose(y, (*range(lead), y.ndim - 1, *range(lead, y.ndim - 1)))

    def get_config(self):
        config = super().get_config()
        for key in ("units", "dropout", "recurrent_dropout", "stateful"):
            config.pop(key, None)
        return {**config, "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate),
                "recurrent_activation": ser_act(self.recurrent_activation)}


class ConvLSTM1D(_ConvLSTM):
    rank = 1


class ConvLSTM2D(_ConvLSTM):
    rank = 2


class ConvLSTM3D(_ConvLSTM):
    rank = 3
