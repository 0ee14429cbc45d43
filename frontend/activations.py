"""kc.activations: Keras 3 activation functions by name and as functions, built from kc.ops."""
from __future__ import annotations

from . import ops


def linear(x):
    return x


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    pos = ops.where(ops.greater(x, threshold), x, 0.0)
    if max_value is not None:
        pos = ops.minimum(pos, max_value)
    if negative_slope:
        pos = ops.where(ops.greater(x, threshold), pos, ops.multiply(ops.subtract(x, threshold), negative_slope))
    return pos


def relu6(x):
    return ops.relu6(x)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return ops.tanh(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return ops.log_softmax(x, axis=axis)


def elu(x, alpha=1.0):
    return ops.elu(x, alpha)


def selu(x):
    return ops.selu(x)


def gelu(x, approximate=False):
    """Keras activations.gelu: exact (erf) form by default."""
    return ops.gelu(x, approximate=approximate)


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope)


def softplus(x):
    return ops.softplus(x)


def silu(x):
    return ops.silu(x)


swish = silu


def exponential(x):
    return ops.exp(x)


def hard_sigmoid(x):
    return ops.hard_sigmoid(x)


def hard_silu(x):
    return ops.hard_silu(x)


hard_swish = hard_silu

ALL = {f.__name__: f for f in (linear, relu, relu6, sigmoid, tanh, softmax, log_softmax, elu, selu, gelu,
                               leaky_relu, softplus, silu, exponential, hard_sigmoid, hard_silu)}
ALL.update({"swish": silu, "hard_swish": hard_silu})


def get(identifier):
    """An activation function from None (linear), a name or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = ALL.get(identifier)
        if fn is None:
            from .saving import get_registered
            fn = get_registered(identifier)
        if fn is None:
            raise ValueError(f"unknown activation {identifier!r}; known: {sorted(ALL)}")
        return fn
    if callable(identifier):
        return identifier
    raise ValueError(f"could not interpret activation {identifier!r}")


def serialize(fn) -> str:
    for name, f in ALL.items():
        if f is fn:
            return name
    from .saving import registered_name
    name = registered_name(fn)
    if name is None:
        raise ValueError(f"activation {fn!r} is neither built in nor registered with "
                         "kc.saving.register_keras_serializable; it cannot be saved")
    return name
