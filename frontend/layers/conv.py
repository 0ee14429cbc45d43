"""Convolution layers: Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D (channels_first through a
layout transpose at the layer's boundary, data_format.py)."""
from __future__ import annotations

from .. import activations, constraints, initializers, ops, regularizers
from ..tensor import apply
from .base import Layer
from .core import as_float, check_last_dim
from . import arguments
from .data_format import channel_axis, channels_last_call, check_rank, standardize_data_format
from .serial import ser_act, ser_con, ser_init, ser_reg
from .volumetric import conv3d


class _BaseConv(Layer):
    """Shared arguments and build of the convolutions (`rank` spatial dims)."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.data_format = standardize_data_format(data_format, self.name)
        self.filters = arguments.integer(self, "filters", filters)
        self.groups = arguments.integer(self, "groups", groups)
        self.kernel_size = arguments.int_tuple(self, "kernel_size", kernel_size, self.rank)
        self.strides = arguments.int_tuple(self, "strides", strides, self.rank)
        self.dilation_rate = arguments.int_tuple(self, "dilation_rate", dilation_rate, self.rank)
        allowed = ("valid", "same", "causal") if self.rank == 1 else ("valid", "same")
        self.padding = arguments.choice(self, "padding", padding, allowed)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        if self.filters % self.groups:
            raise ValueError(f"layer '{self.name}': filters ({filters}) must be divisible by groups ({groups})")

    def build(self, input_shape):
        check_rank(self, input_shape, self.rank + 2)
        cin = input_shape[channel_axis(self.data_format)]
        if cin % self.groups:
            raise ValueError(f"layer '{self.name}': input channels {cin} (shape {tuple(input_shape)}) are not "
                             f"divisible by groups={self.groups}")
        self.kernel = self.add_weight(shape=self._kernel_shape(cin),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None

    @channels_last_call
    def call(self, inputs):
        check_last_dim(self, inputs, self._in_channels())
        x = self._conv(as_float(inputs))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def _in_channels(self):
        return self.kernel.shape[-2] * self.groups

    def _kernel_shape(self, cin):
        return self.kernel_size + (cin // self.groups, self.filters)

    def _conv(self, x):
        if self.rank == 1:
            return apply("conv1d", x, self.kernel, strides=self.strides[0], padding=self.padding,
                         dilations=self.dilation_rate[0], groups=self.groups)
        return apply("conv2d", x, self.kernel, strides=self.strides, padding=self.padding,
                     dilations=self.dilation_rate, groups=self.groups)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "groups": self.groups,
                "activation": ser_act(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": ser_init(self.kernel_initializer),
                "bias_initializer": ser_init(self.bias_initializer),
                "kernel_regularizer": ser_reg(self.kernel_regularizer),
                "bias_regularizer": ser_reg(self.bias_regularizer),
                "kernel_constraint": ser_con(self.kernel_constraint), "bias_constraint": ser_con(self.bias_constraint)}


class Conv1D(_BaseConv):
    rank = 1


class Conv2D(_BaseConv):
    rank = 2


class Conv3D(_BaseConv):
    """(N, D, H, W, C) through one (grouped) conv2d (layers/volumetric.py)."""

    rank = 3

    def _conv(self, x):
        return conv3d(x, self.kernel, self.strides, self.padding, self.dilation_rate, self.groups)


def depthwise(x, kernel, strides, padding, dilation_rate):
    """Depthwise conv: kernel (kh, kw, cin, dm) as a grouped conv2d with cin groups."""
    kh, kw, cin, dm = kernel.ir_shape
    w = ops.reshape(kernel, (kh, kw, 1, cin * dm))
    return apply("conv2d", x, w, strides=strides, padding=padding, dilations=dilation_rate, groups=cin)


class DepthwiseConv2D(Layer):
    rank = 2

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.data_format = standardize_data_format(data_format, self.name)
        self.kernel_size = arguments.int_tuple(self, "kernel_size", kernel_size, 2)
        self.strides = arguments.int_tuple(self, "strides", strides, 2)
        self.dilation_rate = arguments.int_tuple(self, "dilation_rate", dilation_rate, 2)
        self.padding = arguments.choice(self, "padding", padding, ("valid", "same"))
        self.depth_multiplier = arguments.integer(self, "depth_multiplier", depth_multiplier)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape):
        check_rank(self, input_shape, 4)
        cin = input_shape[channel_axis(self.data_format)]
        self.kernel = self.add_weight(shape=self.kernel_size + (cin, self.depth_multiplier),
                                      initializer=self.depthwise_initializer,
                                      regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint,
                                      name="kernel")
        self.bias = self.add_weight(shape=(cin * self.depth_multiplier,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None

    @channels_last_call
    def call(self, inputs):
        check_last_dim(self, inputs, self.kernel.shape[2])
        x = depthwise(as_float(inputs), self.kernel, self.strides, self.padding, self.dilation_rate)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.kernel_size), "strides": list(self.strides),
                "padding": self.padding, "data_format": self.data_format, "depth_multiplier": self.depth_multiplier,
                "dilation_rate": list(self.dilation_rate), "activation": ser_act(self.activation),
                "use_bias": self.use_bias, "depthwise_initializer": ser_init(self.depthwise_initializer),
                "bias_initializer": ser_init(self.bias_initializer),
                "depthwise_regularizer": ser_reg(self.depthwise_regularizer),
                "bias_regularizer": ser_reg(self.bias_regularizer),
                "depthwise_constraint": ser_con(self.depthwise_constraint),
                "bias_constraint": ser_con(self.bias_constraint)}


class SeparableConv2D(Layer):
    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.data_format = standardize_data_format(data_format, self.name)
        self.filters = arguments.integer(self, "filters", filters)
        self.kernel_size = arguments.int_tuple(self, "kernel_size", kernel_size, 2)
        self.strides = arguments.int_tuple(self, "strides", strides, 2)
        self.dilation_rate = arguments.int_tuple(self, "dilation_rate", dilation_rate, 2)
        self.padding = arguments.choice(self, "padding", padding, ("valid", "same"))
        self.depth_multiplier = arguments.integer(self, "depth_multiplier", depth_multiplier)
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def build(self, input_shape):
        check_rank(self, input_shape, 4)
        cin, dm = input_shape[channel_axis(self.data_format)], self.depth_multiplier
        self.depthwise_kernel = self.add_weight(shape=self.kernel_size + (cin, dm), name="depthwise_kernel",
                                                initializer=self.depthwise_initializer,
                                                regularizer=self.depthwise_regularizer,
                                                constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight(shape=(1, 1, cin * dm, self.filters), name="pointwise_kernel",
                                                initializer=self.pointwise_initializer,
                                                regularizer=self.pointwise_regularizer,
                                                constraint=self.pointwise_constraint)
        self.bias = self.add_weight(shape=(self.filters,), initializer=self.bias_initializer,
                                    regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                    name="bias") if self.use_bias else None

    @channels_last_call
    def call(self, inputs):
        check_last_dim(self, inputs, self.depthwise_kernel.shape[2])
        x = depthwise(as_float(inputs), self.depthwise_kernel, self.strides, self.padding, self.dilation_rate)
        x = apply("conv2d", x, self.pointwise_kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate), "depth_multiplier": self.depth_multiplier,
                "activation": ser_act(self.activation), "use_bias": self.use_bias,
                "depthwise_initializer": ser_init(self.depthwise_initializer),
                "pointwise_initializer": ser_init(self.pointwise_initializer),
                "bias_initializer": ser_init(self.bias_initializer),
                "depthwise_regularizer": ser_reg(self.depthwise_regularizer),
                "pointwise_regularizer": ser_reg(self.pointwise_regularizer),
                "bias_regularizer": ser_reg(self.bias_regularizer),
                "depthwise_constraint": ser_con(self.depthwise_constraint),
                "pointwise_constraint": ser_con(self.pointwise_constraint),
                "bias_constraint": ser_con(self.bias_constraint)}
