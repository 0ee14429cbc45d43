"""Transposed convolutions: Conv1DTranspose, Conv2DTranspose, Conv3DTranspose (kernel (k..., filters, in),
as Keras).

Each records one conv2d_transpose op through kc.ops.conv_transpose (1-D: (N, W, C) viewed as (N, 1, W, C);
3-D: depth blocks stacked along H and depth taps as channels, layers/volumetric.py).
"""
from __future__ import annotations

from .. import ops
from . import arguments
from .conv import _BaseConv


class _BaseConvTranspose(_BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias, **kwargs)
        if self.padding not in ("valid", "same"):   # Conv1D's "causal" has no transposed form
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}): padding must be 'valid' or 'same', "
                             f"got {padding!r}")
        self.output_padding = (None if output_padding is None else
                               arguments.int_tuple(self, "output_padding", output_padding, self.rank, minimum=0))
        for i, (op, s) in enumerate(zip(self.output_padding or (), self.strides)):
            if not 0 <= op < s:
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}): output_padding must be at least 0 "
                                 f"and strictly less than strides in every dimension; at dimension {i} "
                                 f"output_padding is {op} and strides is {s} (output_padding="
                                 f"{self.output_padding}, strides={self.strides})")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"layer '{self.name}': strides > 1 is not supported with dilation_rate > 1, got "
                             f"strides={self.strides} and dilation_rate={self.dilation_rate}")

    def _kernel_shape(self, cin):
        return self.kernel_size + (self.filters, cin)

    def _in_channels(self):
        return self.kernel.shape[-1]

    def _conv(self, x):
        return ops.conv_transpose(x, self.kernel, self.strides, self.padding, self.output_padding,
                                  dilation_rate=self.dilation_rate)

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        return {**config, "output_padding": None if self.output_padding is None else list(self.output_padding)}


class Conv1DTranspose(_BaseConvTranspose):
    rank = 1


class Conv2DTranspose(_BaseConvTranspose):
    rank = 2


class Conv3DTranspose(_BaseConvTranspose):
    rank = 3
