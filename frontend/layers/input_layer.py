"""InputLayer and kc.Input: the symbolic entry points of a functional model."""
from __future__ import annotations

from kcompile.ir import BATCH, TensorType, dtype as to_dtype

from ..tensor import KTensor
from .base import Layer
from .nodes import LayerNode


class InputLayer(Layer):
    """Holds the symbolic tensor a functional model starts from; the batch axis is symbolic, and so is
    any dimension given as None (a dynamic sequence length: the symbol T)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, name=None, **kwargs):
        super().__init__(name=name or None, **_no_shape_kwargs(kwargs))
        if batch_shape is not None:
            shape = tuple(batch_shape)[1:]
            batch_size = batch_size if batch_size is not None else tuple(batch_shape)[0]
        if shape is None:
            raise ValueError(f"InputLayer '{self.name}': pass shape= (without the batch dimension)")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        shape = tuple(dynamic_dim(i) if d is None else d for i, d in enumerate(shape))
        if sparse:
            raise ValueError(f"InputLayer '{self.name}': sparse inputs are not supported")
        if input_tensor is not None:   # Keras would wire the model to that tensor; kcompile starts afresh
            raise ValueError(f"InputLayer '{self.name}': input_tensor= is not supported")
        self.dtype = _keras_dtype_name(dtype or "float32")
        self._input_shape = shape
        self.batch_size = batch_size
        self.built = True
        node = LayerNode(self, (), {})
        tensor = KTensor(spec=TensorType((BATCH,) + shape, self.dtype), history=(node, 0))
        node.outputs, node.outputs_struct = [tensor], tensor
        self._inbound_nodes.append(node)
        self._output_spec = tensor.shape

    @property
    def input(self):
        return self.output

    def get_config(self):
        shape = [None if isinstance(d, str) else d for d in self._input_shape]
        return {"batch_shape": [self.batch_size, *shape], "dtype": self.dtype, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def dynamic_dim(i: int) -> str:
    """The symbol of an unknown (None) input dimension: T for the first (a sequence length), then T2, T3."""
    return "T" if i == 0 else f"T{i + 1}"


def _no_shape_kwargs(kwargs):
    kwargs = dict(kwargs)
    kwargs.pop("input_shape", None)
    return kwargs


def _keras_dtype_name(dt) -> str:
    from ..tensor import keras_dtype
    return keras_dtype(to_dtype(dt))


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None,
          optional=False):
    """A symbolic input tensor (the batch dimension is implicit), as keras.Input."""
    if tensor is not None:
        raise ValueError("kc.Input(tensor=...) is not supported")
    if optional:
        raise ValueError("kc.Input(optional=True) is not supported: every input must be given")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                       name=name)
    return layer.output
