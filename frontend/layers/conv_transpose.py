"""Transposed convolutions: Conv1DTranspose, Conv2DTranspose (kernel (k..., filters, in), as Keras).

Both record one conv2d_transpose op; the 1-D layer views (N, W, C) as (N, 1, W, C).
"""
from __future__ import annotations

from .. import ops
from ..tensor import apply
from .conv import _BaseConv


class _BaseConvTranspose(_BaseConv):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, **kwargs):
        if str(padding).lower() not in ("valid", "same"):
            raise ValueError(f"layer '{kwargs.get('name')}' ({type(self).__name__}): padding must be 'valid' or "
                             f"'same', got {padding!r}")
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias, **kwargs)
        self.output_padding = None if output_padding is None else self._tuple(output_padding, "output_padding")
        for i, (op, s) in enumerate(zip(self.output_padding or (), self.strides)):
            if not 0 <= op < s:
                raise ValueError(f"layer '{self.name}' ({type(self).__name__}): output_padding must be at least 0 "
                                 f"and strictly less than strides in every dimension; at dimension {i} "
                                 f"output_padding is {op} and strides is {s} (output_padding="
                                 f"{self.output_padding}, strides={self.strides})")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"layer '{self.name}': strides > 1 is not supported with dilation_rate > 1, got "
                             f"strides={self.strides} and dilation_rate={self.dilation_rate}")

    def _tuple(self, v, what):
        t = (v,) * self.rank if isinstance(v, int) else tuple(v)
        if len(t) != self.rank or not all(isinstance(x, int) for x in t):
            raise ValueError(f"layer '{self.name}': {what} must be an int or {self.rank} ints, got {v!r}")
        return t

    def _kernel_shape(self, cin):
        return self.kernel_size + (self.filters, cin)

    def _in_channels(self):
        return self.kernel.shape[-1]

    def _conv(self, x):
        w, strides, dilations = self.kernel, self.strides, self.dilation_rate
        out_pad = self.output_padding or ()
        if self.rank == 1:   # (N, W, C) as (N, 1, W, C); a 1-row kernel adds no rows, whatever its padding
            x, w = ops.expand_dims(x, 1), ops.expand_dims(w, 0)
            strides, dilations, out_pad = (1, *strides), (1, *dilations), (0, *out_pad) if out_pad else ()
        y = apply("conv2d_transpose", x, w, strides=strides, padding=self.padding, dilations=dilations,
                  output_padding=out_pad)
        return ops.squeeze(y, 1) if self.rank == 1 else y

    def get_config(self):
        config = super().get_config()
        del config["groups"]
        return {**config, "output_padding": None if self.output_padding is None else list(self.output_padding)}


class Conv1DTranspose(_BaseConvTranspose):
    rank = 1


class Conv2DTranspose(_BaseConvTranspose):
    rank = 2
