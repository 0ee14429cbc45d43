"""Keras 3's regularization layers: GaussianNoise, GaussianDropout, SpatialDropout1D/2D/3D,
ActivityRegularization. Identity at inference; in training the noise comes from the counter-based
generator (random_uniform_like), so native code, the reference and ONNX draw the same numbers."""
from __future__ import annotations

import math

from .. import ops, regularizers
from ..tensor import apply
from . import arguments
from .base import Layer
from .core import Dropout, layer_seed, random_uniform
from .serial import check_channels_last


def random_normal(layer, x, seed: int):
    """N(0, 1) of x's shape by Box-Muller on two counter-based uniforms (1 - u lies in (0, 1])."""
    u1 = random_uniform(layer, x, seed)
    u2 = random_uniform(layer, x, seed)
    radius = ops.sqrt(ops.multiply(ops.log(ops.subtract(1.0, u1)), -2.0))
    return ops.multiply(radius, ops.cos(ops.multiply(u2, 2.0 * math.pi)))


def _check_unit_interval(layer, name: str, value):
    arguments.number(layer, name, value, 0, 1)


class GaussianNoise(Layer):
    """Adds N(0, stddev**2) noise in training."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check_unit_interval(self, "stddev", stddev)
        self.stddev, self.seed = stddev, seed

    def call(self, inputs, training=False):
        if not training or self.stddev == 0:
            return inputs
        noise = random_normal(self, inputs, layer_seed(self, self.seed))
        return ops.add(inputs, ops.multiply(noise, float(self.stddev)))

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class GaussianDropout(Layer):
    """Multiplies by N(1, rate / (1 - rate)) noise in training."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check_unit_interval(self, "rate", rate)
        self.rate, self.seed = rate, seed

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        stddev = math.sqrt(self.rate / (1.0 - self.rate)) if self.rate < 1 else math.inf
        noise = random_normal(self, inputs, layer_seed(self, self.seed))
        return ops.multiply(inputs, ops.add(ops.multiply(noise, stddev), 1.0))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class _SpatialDropout(Dropout):
    """Dropout whose mask is shared across the spatial axes: whole feature maps are dropped."""

    RANK = 0

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        check_channels_last(data_format, self.name)
        self.data_format = "channels_last"

    def call(self, inputs, training=False):
        if inputs.ndim != self.RANK:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) expects inputs of rank {self.RANK}, "
                             f"got shape {inputs.shape}")
        return super().call(inputs, training=training)

    def _noise_template(self, x):
        """x[:, :1, ..., :1, :]: one mask value per (sample, channel)."""
        axes = list(range(1, x.ndim - 1))
        return apply("slice", x, axes=axes, starts=[0] * len(axes), ends=[1] * len(axes))

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k != "noise_shape"}
        return {**config, "data_format": self.data_format} if self.RANK > 3 else config


class SpatialDropout1D(_SpatialDropout):
    RANK = 3

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)


class SpatialDropout2D(_SpatialDropout):
    RANK = 4


class SpatialDropout3D(_SpatialDropout):
    RANK = 5


class ActivityRegularization(Layer):
    """Identity that adds an L1/L2 penalty on its output (divided by the batch size, as Keras)."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        kwargs.pop("activity_regularizer", None)
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = l1, l2

    def call(self, inputs):
        return inputs

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k != "activity_regularizer"}
        return {**config, "l1": self.l1, "l2": self.l2}
