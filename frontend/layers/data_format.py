"""data_format for the spatial layers: kcompile computes channels_last (NHWC); a channels_first layer
transposes its input to channels_last and its output back, at its boundary (canonicalization cancels
the back-to-back transposes between two channels_first layers)."""
from __future__ import annotations

import functools

from .. import ops

FORMATS = ("channels_last", "channels_first")


def standardize_data_format(data_format, layer: str) -> str:
    """Keras's rule: None is channels_last (kcompile's image data format), otherwise one of FORMATS."""
    fmt = "channels_last" if data_format is None else str(data_format).lower()
    if fmt not in FORMATS:
        raise ValueError(f"layer '{layer}': data_format must be one of {list(FORMATS)}, got {data_format!r}")
    return fmt


def channel_axis(data_format: str) -> int:
    return 1 if data_format == "channels_first" else -1


def to_channels_last(x, data_format: str):
    if data_format != "channels_first":
        return x
    return ops.transpose(x, (0, *range(2, x.ndim), 1))


def from_channels_last(x, data_format: str):
    if data_format != "channels_first" or x.ndim <= 2:
        return x
    return ops.transpose(x, (0, x.ndim - 1, *range(1, x.ndim - 1)))


def spatial_shape(input_shape, data_format: str) -> tuple:
    """The spatial dimensions of a (batch, ..., channels) or (batch, channels, ...) shape."""
    return tuple(input_shape[2:] if data_format == "channels_first" else input_shape[1:-1])


def check_rank(layer, input_shape, rank: int):
    if len(input_shape) != rank:
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) expects inputs of rank {rank} "
                         f"(batch, spatial..., channels), got shape {tuple(input_shape)}")


def channels_last_call(call):
    """Wrap a layer's `call` written for channels_last inputs: check the rank (the layer's `rank`
    spatial axes), then transpose in and out around it when the layer is channels_first."""
    @functools.wraps(call)
    def wrapped(self, inputs, *args, **kwargs):
        check_rank(self, inputs.shape, self.rank + 2)
        y = call(self, to_channels_last(inputs, self.data_format), *args, **kwargs)
        return from_channels_last(y, self.data_format)
    return wrapped
