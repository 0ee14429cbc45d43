"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, Rescaling, Embedding."""
from __future__ import annotations

import zlib

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from ..tensor import KTensor, apply, convert_to_tensor, current_trace
from . import arguments
from .base import Layer
from .serial import check_channels_last, ser_act, ser_con, ser_init, ser_reg


def check_last_dim(layer, x, expected: int, what="input"):
    got = x.ir_shape[-1] if x.ndim else None
    if x.ndim == 0 or got != expected:
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) expects an {what} whose last "
                         f"dimension is {expected}, got shape {x.shape}")


def as_float(x):
    return x if x.ir_type.dtype.is_float else ops.cast(x, "float32")


class Dense(Layer):
    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if lora_rank is not None:
            raise NotImplementedError(f"Dense '{self.name}': LoRA is not supported")
        self.units = arguments.integer(self, "units", units)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"layer '{self.name}' (Dense) needs inputs of rank >= 2, got shape {input_shape}")
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None

    def call(self, inputs):
        check_last_dim(self, inputs, self.kernel.shape[0])
        x = ops.matmul(as_float(inputs), self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": ser_act(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": ser_init(self.kernel_initializer),
                "bias_initializer": ser_init(self.bias_initializer),
                "kernel_regularizer": ser_reg(self.kernel_regularizer),
                "bias_regularizer": ser_reg(self.bias_regularizer),
                "kernel_constraint": ser_con(self.kernel_constraint), "bias_constraint": ser_con(self.bias_constraint)}


class Activation(Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": ser_act(self.activation)}


class _EagerCounter:
    """Counter for dropout masks drawn eagerly (outside a trace): a new mask each call."""
    value = 0

    @classmethod
    def next(cls) -> KTensor:
        cls.value += 1
        return convert_to_tensor(np.asarray(cls.value, np.int64))


def random_uniform(layer, x, seed: int) -> KTensor:
    """U[0,1) of x's shape from the trace's rng counter (or the eager counter), distinct per call."""
    ctx = current_trace()
    if ctx is None:
        return apply("random_uniform_like", x, _EagerCounter.next(), seed=seed)
    uses = ctx.seed_uses.get(seed, 0)
    ctx.seed_uses[seed] = uses + 1
    counter = ctx.counter(f"layer '{layer.name}' ({type(layer).__name__})")
    return apply("random_uniform_like", x, KTensor(value=counter, trace=ctx), seed=(seed + 7919 * uses) % 2**31)


def layer_seed(layer, seed) -> int:
    """The user's seed, else one derived from the layer name (deterministic, distinct per layer)."""
    return int(seed) if seed is not None else zlib.crc32(layer.name.encode()) % 2**31


class Dropout(Layer):
    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = arguments.number(self, "rate", rate, 0, 1)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        if self.rate == 1:
            return ops.multiply(inputs, 0.0)
        u = random_uniform(self, self._noise_template(inputs), layer_seed(self, self.seed))
        keep = ops.greater_equal(u, self.rate)
        return ops.where(keep, ops.divide(inputs, 1.0 - self.rate), 0.0)

    def _noise_template(self, x):
        """A slice of x with the noise shape (size-1 axes where noise_shape says 1)."""
        if self.noise_shape is None:
            return x
        axes = [i for i, (n, d) in enumerate(zip(self.noise_shape, x.ir_shape)) if n == 1 and d != 1]
        if not axes:
            return x
        return apply("slice", x, axes=axes, starts=[0] * len(axes), ends=[1] * len(axes))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape), "seed": self.seed}


class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(data_format, self.name)   # channels_first would transpose before flattening
        self.data_format = "channels_last"

    def call(self, inputs):
        shape = inputs.ir_shape
        rest = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return apply("reshape", inputs, shape=(shape[0], rest))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = arguments.int_tuple(self, "target_shape", target_shape, None, minimum=-1)

    def call(self, inputs):
        return apply("reshape", inputs, shape=(inputs.ir_shape[0],) + self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Rescaling(Layer):
    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, inputs):
        return ops.add(ops.multiply(as_float(inputs), self.scale), self.offset)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


class Embedding(Layer):
    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, **kwargs):
        super().__init__(**kwargs)
        if mask_zero or lora_rank is not None:
            raise NotImplementedError(f"Embedding '{self.name}': mask_zero and LoRA are not supported")
        self.input_dim = arguments.integer(self, "input_dim", input_dim)
        self.output_dim = arguments.integer(self, "output_dim", output_dim)
        self.embeddings_initializer = initializers.get(
            "random_uniform" if embeddings_initializer == "uniform" else embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self._initial_weights = weights

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint, name="embeddings")
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)

    def call(self, inputs):
        idx = inputs if inputs.ir_type.dtype.is_int else ops.cast(inputs, "int32")
        return apply("gather", self.embeddings, idx, axis=0)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": ser_init(self.embeddings_initializer),
                "embeddings_regularizer": ser_reg(self.embeddings_regularizer),
                "embeddings_constraint": ser_con(self.embeddings_constraint)}
