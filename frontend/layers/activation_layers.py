"""Activation layers: ReLU, LeakyReLU, ELU, Softmax, and the Identity and Lambda layers."""
from __future__ import annotations

import inspect

from .. import activations, ops
from . import arguments
from .base import Layer


class ReLU(Layer):
    supports_masking = True   # Keras 3: the input's mask passes through
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
    supports_masking = True   # Keras 3: the input's mask passes through
    def __init__(self, negative_slope=0.3, **kwargs):
        alpha = kwargs.pop("alpha", None)   # the Keras 2 name
        super().__init__(**kwargs)
        self.negative_slope = arguments.number(self, "negative_slope", alpha if alpha is not None else negative_slope)

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(Layer):
    supports_masking = True   # Keras 3: the input's mask passes through
    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = arguments.number(self, "alpha", alpha)

    def call(self, inputs):
        return ops.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class Softmax(Layer):
    supports_masking = True   # Keras 3: the input's mask passes through
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.softmax(inputs, axis=self.axis)
        if mask.ndim > inputs.ndim or any(m not in (1, i) for m, i in zip(mask.shape[::-1], inputs.shape[::-1])
                                          if m is not None and i is not None):
            raise ValueError(f"layer '{self.name}' (Softmax) got a mask of shape {mask.shape} that does not "
                             f"broadcast to its inputs of shape {inputs.shape}")
        keep = mask if mask.dtype == "bool" else ops.greater(mask, 0.5)
        # Keras: masked positions get a large negative logit, and zero probability afterwards
        out = ops.softmax(ops.where(keep, inputs, -1e9), axis=self.axis)
        return ops.where(keep, out, 0.0)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Identity(Layer):
    supports_masking = True   # Keras 3: the input's mask passes through
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
        self.function = self._resolved(function, "function")
        if isinstance(mask, dict):   # Keras's serialized lambda, or a function's config: refused, as for `function`
            raise ValueError(f"Lambda '{self.name}': a serialized mask ({mask.get('class_name')!r}) is refused; "
                             "pass a callable, a registered function's name or a mask tensor")
        # Keras 3: mask is None (no masking: a mask is dropped here), a compute_mask(inputs, mask)
        # function, or a fixed mask for the output whatever comes in
        self.mask = self._resolved(mask, "mask") if isinstance(mask, str) or callable(mask) else mask
        self.supports_masking = mask is not None
        self.arguments = dict(arguments or {})

    def _resolved(self, function, what: str):
        if isinstance(function, str):
            from ..saving import get_registered
            resolved = get_registered(function)
            if resolved is None:
                raise ValueError(f"Lambda '{self.name}': {what} {function!r} is not registered")
            function = resolved
        if not callable(function):
            raise ValueError(f"Lambda '{self.name}': {what} must be callable or a registered function's name, "
                             f"got {type(function).__name__}")
        return function

    def call(self, inputs, mask=None, training=False):
        # Keras passes `training` (and `mask`: the inputs' mask) to a function that takes it
        extra = {"training": training} if _takes(self.function, "training") else {}
        if _takes(self.function, "mask"):
            extra["mask"] = mask
        return self.function(inputs, **self.arguments, **extra)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        if self.mask is None:
            return None
        fixed = ops.convert_to_tensor(self.mask)
        return fixed if fixed.dtype == "bool" else ops.not_equal(fixed, 0)

    def get_config(self):
        config = {**super().get_config(), "function": self._saved_name(self.function, "its function"),
                  "arguments": self.arguments}
        if self.mask is not None:
            if not callable(self.mask):
                raise ValueError(f"Lambda '{self.name}' cannot be saved with a fixed mask tensor; pass a "
                                 "registered mask function instead")
            config["mask"] = self._saved_name(self.mask, "its mask function")
        return config

    def _saved_name(self, fn, what: str) -> str:
        from ..saving import registered_name
        name = registered_name(fn)
        if name is None:
            raise ValueError(f"Lambda '{self.name}' cannot be saved: {what} is not registered with "
                             "kc.saving.register_keras_serializable (kcompile never saves Python code)")
        return name


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
