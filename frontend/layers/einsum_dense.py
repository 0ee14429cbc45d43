"""EinsumDense: a dense layer given as an einsum equation (Keras 3 shapes, fans and bias layout).

MultiHeadAttention builds its projections from it, so its kernels have Keras's (dim, heads, key_dim)
and (heads, value_dim, dim) layouts and get_weights/set_weights carry over unchanged.
"""
from __future__ import annotations

import re

from .. import activations, constraints, initializers, ops, regularizers
from ..einsum import einsum
from .base import Layer
from .serial import ser_act, ser_con, ser_init, ser_reg


def analyze_equation(equation, bias_axes, input_shape, output_shape, who):
    """(kernel shape, bias shape or None, full output shape, kernel input axes, kernel output axes)."""
    dotted = re.sub(r"\.\.\.", "0", equation)
    for pattern, left_elided in (("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$", False),
                                 ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$", True),
                                 ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$", False)):
        m = re.match(pattern, dotted)
        if m:
            return _analyze(m.groups(), bias_axes, list(input_shape), output_shape, left_elided, who)
    raise ValueError(f"{who}: invalid einsum equation '{equation}'; equations must be in the form "
                     "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...")


def _analyze(specs, bias_axes, input_shape, output_shape, left_elided, who):
    input_spec, weight_spec, output_spec = specs
    elided = len(input_shape) - len(input_spec)
    out = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    out.insert(0, input_shape[0])
    if elided > 0 and left_elided:
        for i in range(1, elided):
            out.insert(1, input_shape[i])
    elif elided > 0:
        out.extend(input_shape[len(input_shape) - elided:])
    if left_elided:
        in_map = {c: i + elided - len(input_shape) for i, c in enumerate(input_spec)}
        out_map = {c: i + elided for i, c in enumerate(output_spec)}
    else:
        in_map = {c: i for i, c in enumerate(input_spec)}
        out_map = {c: i for i, c in enumerate(output_spec)}
    for c in input_spec:
        if c in out_map and out[out_map[c]] is not None and out[out_map[c]] != input_shape[in_map[c]]:
            raise ValueError(f"{who}: input shape and output shape do not match at shared dimension '{c}': "
                             f"input {input_shape[in_map[c]]}, output {out[out_map[c]]}")
    for c in output_spec:
        if c not in input_spec and c not in weight_spec:
            raise ValueError(f"{who}: output dimension '{c}' is in neither the input '{input_spec}' nor the "
                             f"weight '{weight_spec}'")
    kernel, in_axes, out_axes = [], [], []
    for i, c in enumerate(weight_spec):
        if c in out_map:
            kernel.append(out[out_map[c]])
            out_axes.append(i)
        elif c in in_map:
            kernel.append(input_shape[in_map[c]])
            in_axes.append(i)
        else:
            raise ValueError(f"{who}: weight dimension '{c}' is in neither the input '{input_spec}' nor the "
                             f"output '{output_spec}'; the weight must be fully specified")
    for i, c in enumerate(output_spec):  # free output labels take the input's size
        if out[out_map[c]] is None and c in in_map:
            out[out_map[c]] = input_shape[in_map[c]]
    return kernel, _bias_shape(bias_axes, output_spec, out, elided, left_elided, who), out, in_axes, out_axes


def _bias_shape(bias_axes, output_spec, out, elided, left_elided, who):
    if bias_axes is None:
        return None
    sizes = {c: out[i + (elided if left_elided else 0)] for i, c in enumerate(output_spec)}
    for c in bias_axes:
        if c not in output_spec:
            raise ValueError(f"{who}: bias dimension '{c}' is not part of the output spec '{output_spec}'")
    first = min(output_spec.find(c) for c in bias_axes)
    shape = [sizes[c] if c in bias_axes else 1 for c in output_spec[first:]]
    return shape + ([1] * elided if not left_elided else [])


def _fan_shaped(init, kernel_shape, in_axes, out_axes):
    """Keras draws an EinsumDense kernel with fans from its input and output axes, not its last two."""
    if not isinstance(init, initializers.VarianceScaling):
        return init
    fan_in = fan_out = 1
    for i in in_axes:
        fan_in *= kernel_shape[i]
    for i in out_axes:
        fan_out *= kernel_shape[i]
    return lambda shape, dtype=None: init((fan_in, fan_out), dtype).reshape(shape)


def set_kernel_bias_options(layer, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                            kernel_constraint, bias_constraint):
    """The six kernel/bias options as attributes, resolved from Keras identifiers."""
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)
    layer.kernel_constraint = constraints.get(kernel_constraint)
    layer.bias_constraint = constraints.get(bias_constraint)


def kernel_bias_config(layer) -> dict:
    return {"kernel_initializer": ser_init(layer.kernel_initializer),
            "bias_initializer": ser_init(layer.bias_initializer),
            "kernel_regularizer": ser_reg(layer.kernel_regularizer),
            "bias_regularizer": ser_reg(layer.bias_regularizer),
            "kernel_constraint": ser_con(layer.kernel_constraint), "bias_constraint": ser_con(layer.bias_constraint)}


class EinsumDense(Layer):
    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if lora_rank is not None:
            raise NotImplementedError(f"EinsumDense '{self.name}': LoRA is not supported")
        self.equation = equation
        self.partial_output_shape = (output_shape,) if isinstance(output_shape, int) else tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        set_kernel_bias_options(self, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                                kernel_constraint, bias_constraint)
        self.kernel = self.bias = None

    def build(self, input_shape):
        who = f"layer '{self.name}' (EinsumDense)"
        kernel, bias, self.full_output_shape, in_axes, out_axes = analyze_equation(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape, who)
        self._input_shape = tuple(input_shape)
        init = _fan_shaped(self.kernel_initializer, kernel, in_axes, out_axes)
        self.kernel = self.add_weight(shape=kernel, initializer=init,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        if bias is not None:
            self.bias = self.add_weight(shape=bias, initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint, name="bias")

    def call(self, inputs):
        got, want = tuple(inputs.shape[1:]), self._input_shape[1:]
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            raise ValueError(f"layer '{self.name}' (EinsumDense) was built for inputs of shape "
                             f"{(None,) + tuple(want)}, got shape {inputs.shape}")
        x = einsum(self.equation, inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x) if self.activation is not None else x

    def get_config(self):
        return {**super().get_config(), "equation": self.equation, "output_shape": list(self.partial_output_shape),
                "activation": ser_act(self.activation), "bias_axes": self.bias_axes, **kernel_bias_config(self)}
