"""kcompile: an ahead-of-time compiler for Keras-style neural networks.

`import kcompile as kc` gives the Keras 3 user API: kc.Sequential, kc.Model, kc.Input, kc.layers,
kc.ops, kc.models.load_model, kc.utils, kc.datasets, kc.initializers, kc.activations,
kc.regularizers, kc.Variable, and the training API (kc.losses, kc.metrics, kc.optimizers,
kc.callbacks, kc.GradientTape, kc.grad, kc.value_and_grad, kc.function, kc.config), kc.pruning and
kc.distribution (data-parallel training over MPI), and kc.wait_for_optimized_code (a cold compile
runs unoptimized code until its optimized code is built beside: compiler/tier_up.py).
"""
import importlib

from kcompile import keras_modules

from kcompile.frontend import activations, initializers, layers, ops, regularizers  # noqa: F401
from kcompile.frontend import datasets, models, saving, utils  # noqa: F401
from kcompile.frontend.layers import Input, Layer  # noqa: F401
from kcompile.frontend.models import Model, Sequential  # noqa: F401
from kcompile.frontend.tensor import KTensor  # noqa: F401
from kcompile.frontend.variables import Variable  # noqa: F401

__version__ = "0.1.0"

keras_modules.install()  # `from kcompile.layers import Dense` and the other Keras module names

# The training half is imported on first use, so this facade keeps working while it evolves.
_LAZY = {
    "losses": ("kcompile.frontend.losses", None),
    "metrics": ("kcompile.frontend.metrics", None),
    "optimizers": ("kcompile.frontend.optimizers", None),
    "callbacks": ("kcompile.frontend.callbacks", None),
    "config": ("kcompile.frontend.config", None),
    "GradientTape": ("kcompile.frontend.tape", "GradientTape"),
    "grad": ("kcompile.frontend.tape", "grad"),
    "value_and_grad": ("kcompile.frontend.tape", "value_and_grad"),
    "function": ("kcompile.frontend.function", "function"),
    "TensorSpec": ("kcompile.frontend.function", "TensorSpec"),
    "data": ("kcompile.frontend.data", None),
    "pruning": ("kcompile.frontend.pruning", None),
    "constraints": ("kcompile.frontend.constraints", None),
    "random": ("kcompile.frontend.random", None),
    "quantization": ("kcompile.frontend.quantization", None),
    "distribution": ("kcompile.frontend.distribution", None),
    "set_num_threads": ("kcompile.ir.thread_budget", "set_num_threads"),
    "get_num_threads": ("kcompile.ir.thread_budget", "get_num_threads"),
    "wait_for_optimized_code": ("kcompile.compiler.tier_up", "wait"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'kcompile' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
