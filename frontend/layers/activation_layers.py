"""Activation layers: ReLU, LeakyReLU, ELU, Softmax, and the Identity and Lambda layers."""
from __future__ import annotations

import inspect

from .. import activations, ops
from . import arguments
from .base import Layer


class ReLU(Layer):
    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = arguments.number(self, "max_value", max_value, 0, optional=True)
        self.negative_slope = arguments.number(self, "negative_slope", negative_slope, 0)
        self.threshold = arguments.number(self, "threshold", threshold)

    def call(self, inputs):
        return activations.relu(inputs, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class LeakyReLU(Layer):
    def __init__(self, negative_slope=0.3, **kwargs):
        alpha = kwargs.pop("alpha", None)   # the Keras 2 name
        super().__init__(**kwargs)
        self.negative_slope = arguments.number(self, "negative_slope", alpha if alpha is not None else negative_slope)

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = arguments.number(self, "alpha", alpha)

    def call(self, inputs):
        return ops.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        return ops.softmax(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Identity(Layer):
    def call(self, inputs):
        return inputs


class Lambda(Layer):
    """Wrap a function of tensors; saveable only when the function is registered by name."""

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        function_type = kwargs.pop("function_type", None)   # Keras 2 configs: "lambda" means marshalled code
        for key in ("module", "output_shape_type", "output_shape_module"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        if _is_serialized_code(function, function_type):
            raise ValueError(f"Lambda '{self.name}': serialized Python code is refused (kcompile never runs code "
                             "from a file); register the function with kc.saving.register_keras_serializable "
                             "and pass custom_objects, or rebuild the model in code")
        if mask is not None:   # kcompile propagates no masks: a downstream layer would silently ignore it
            raise NotImplementedError(f"Lambda '{self.name}': mask= is not supported (kcompile has no masking)")
        if isinstance(function, str):
            from ..saving import get_registered
            resolved = get_registered(function)
            if resolved is None:
                raise ValueError(f"Lambda '{self.name}': function {function!r} is not registered")
            function = resolved
        if not callable(function):
            raise ValueError(f"Lambda '{self.name}': function must be callable or a registered function's name, "
                             f"got {type(function).__name__}")
        self.function = function
        self.arguments = dict(arguments or {})

    def call(self, inputs, training=False):
        # Keras passes `training` to a function that takes it (e.g. one that applies dropout)
        extra = {"training": training} if _takes(self.function, "training") else {}
        return self.function(inputs, **self.arguments, **extra)

    def get_config(self):
        from ..saving import registered_name
        name = registered_name(self.function)
        if name is None:
            raise ValueError(f"Lambda '{self.name}' cannot be saved: its function is not registered with "
                             "kc.saving.register_keras_serializable (kcompile never saves Python code)")
        return {**super().get_config(), "function": name, "arguments": self.arguments}


def _is_serialized_code(function, function_type) -> bool:
    """Keras's saved lambdas: marshalled bytecode as {"class_name": "__lambda__", ...} (Keras 3) or a
    [code, defaults, closure] list with function_type "lambda" (Keras 2)."""
    if function_type == "lambda" or isinstance(function, (list, tuple)):
        return True
    return isinstance(function, dict) and (function.get("class_name") == "__lambda__" or "code" in function
                                           or "code" in (function.get("config") or {}))


def _takes(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
