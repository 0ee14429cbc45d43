"""Pooling layers: Max/Average 1D/2D/3D and the global poolings (channels_first by a boundary transpose)."""
from __future__ import annotations

from .. import ops
from ..tensor import apply
from .base import Layer
from .masking import check_mask
from . import arguments
from .data_format import channels_last_call, check_rank, standardize_data_format
from .volumetric import pool3d


class _Pool(Layer):
    """Windowed pooling over `rank` spatial axes with op `<kind>_pool<rank>d`."""

    rank, kind = 2, "max"

    def __init__(self, pool_size=None, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.data_format = standardize_data_format(data_format, self.name)
        pool_size = pool_size if pool_size is not None else 2
        self.pool_size = arguments.int_tuple(self, "pool_size", pool_size, self.rank)
        self.strides = (arguments.int_tuple(self, "strides", strides, self.rank) if strides is not None
                        else self.pool_size)
        self.padding = arguments.choice(self, "padding", padding, ("valid", "same"))

    @channels_last_call
    def call(self, inputs):
        if self.rank == 3:
            return pool3d(self.kind, inputs, self.pool_size, self.strides, self.padding)
        return apply(f"{self.kind}_pool{self.rank}d", inputs, pool_size=self.pool_size, strides=self.strides,
                     padding=self.padding)

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling1D(_Pool):
    rank, kind = 1, "max"


class MaxPooling2D(_Pool):
    rank, kind = 2, "max"


class MaxPooling3D(_Pool):
    rank, kind = 3, "max"


class AveragePooling1D(_Pool):
    rank, kind = 1, "avg"


class AveragePooling2D(_Pool):
    rank, kind = 2, "avg"


class AveragePooling3D(_Pool):
    rank, kind = 3, "avg"


MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D
MaxPool3D, AvgPool3D = MaxPooling3D, AveragePooling3D


class _GlobalPool(Layer):
    rank, reduce = 2, staticmethod(ops.mean)

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format, self.name)
        self.keepdims = keepdims

    @channels_last_call
    def call(self, inputs):
        return self.reduce(inputs, axis=tuple(range(1, self.rank + 1)), keepdims=self.keepdims)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPool):
    rank, reduce = 1, staticmethod(ops.mean)

    def call(self, inputs, mask=None):
        """Keras 3: with a (batch, steps) mask, the mean over the unmasked steps only."""
        if mask is None:
            return super().call(inputs)
        check_rank(self, inputs.shape, 3)
        keep = ops.expand_dims(ops.cast(check_mask(self, mask, inputs, 2), inputs.dtype), 2)
        total = ops.sum(ops.multiply(inputs, keep), axis=1, keepdims=self.keepdims)
        return ops.divide(total, ops.sum(keep, axis=1, keepdims=self.keepdims))

    def compute_mask(self, inputs, mask=None):
        return None


class GlobalAveragePooling2D(_GlobalPool):
    rank, reduce = 2, staticmethod(ops.mean)


class GlobalMaxPooling1D(_GlobalPool):
    rank, reduce = 1, staticmethod(ops.max)


class GlobalMaxPooling2D(_GlobalPool):
    rank, reduce = 2, staticmethod(ops.max)


class GlobalAveragePooling3D(_GlobalPool):
    rank, reduce = 3, staticmethod(ops.mean)


class GlobalMaxPooling3D(_GlobalPool):
    rank, reduce = 3, staticmethod(ops.max)


GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
