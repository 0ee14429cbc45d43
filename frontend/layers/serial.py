"""Config helpers for layers: serialize initializers, regularizers and activations to JSON values."""
from __future__ import annotations

from .. import activations, initializers, regularizers


def ser_init(init):
    return initializers.serialize(init)


def ser_con(constraint):
    from .. import constraints
    return None if constraint is None else constraints.serialize(constraint)


def ser_reg(reg):
    return None if reg is None else regularizers.serialize(reg)


def ser_act(fn):
    return activations.serialize(fn)


def check_channels_last(data_format, layer: str):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"layer '{layer}': data_format={data_format!r} is not supported "
                         "(kcompile computes in channels_last / NHWC)")
