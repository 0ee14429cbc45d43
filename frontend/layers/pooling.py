"""Pooling layers (channels_last): Max/Average 1D/2D and the global poolings."""
from __future__ import annotations

from .. import ops
from ..tensor import apply
from .base import Layer
from .conv import check_rank
from . import arguments
from .serial import check_channels_last


class _Pool(Layer):
    """Windowed pooling over `rank` spatial axes with op `<kind>_pool<rank>d`."""

    rank, kind = 2, "max"

    def __init__(self, pool_size=None, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        check_channels_last(data_format, self.name)
        pool_size = pool_size if pool_size is not None else 2
        self.pool_size = arguments.int_tuple(self, "pool_size", pool_size, self.rank)
        self.strides = (arguments.int_tuple(self, "strides", strides, self.rank) if strides is not None
                        else self.pool_size)
        self.padding = arguments.choice(self, "padding", padding, ("valid", "same"))
        self.data_format = "channels_last"

    def call(self, inputs):
        check_rank(self, inputs.shape, self.rank + 2)
        return apply(f"{self.kind}_pool{self.rank}d", inputs, pool_size=self.pool_size, strides=self.strides,
                     padding=self.padding)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling1D(_Pool):
    rank, kind = 1, "max"


class MaxPooling2D(_Pool):
    rank, kind = 2, "max"


class AveragePooling1D(_Pool):
    rank, kind = 1, "avg"


class AveragePooling2D(_Pool):
    rank, kind = 2, "avg"


MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D


class _GlobalPool(Layer):
    rank, reduce = 2, staticmethod(ops.mean)

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self.name)
        self.data_format = "channels_last"
        self.keepdims = keepdims

    def call(self, inputs):
        check_rank(self, inputs.shape, self.rank + 2)
        return self.reduce(inputs, axis=tuple(range(1, self.rank + 1)), keepdims=self.keepdims)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPool):
    rank, reduce = 1, staticmethod(ops.mean)


class GlobalAveragePooling2D(_GlobalPool):
    rank, reduce = 2, staticmethod(ops.mean)


class GlobalMaxPooling1D(_GlobalPool):
    rank, reduce = 1, staticmethod(ops.max)


class GlobalMaxPooling2D(_GlobalPool):
    rank, reduce = 2, staticmethod(ops.max)


GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
