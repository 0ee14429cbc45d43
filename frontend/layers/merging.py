"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate."""
from __future__ import annotations

from .. import ops
from . import arguments
from .base import Layer


class _Merge(Layer):
    """Combines a list of tensors elementwise; mismatched shapes are reported with the layer's name."""

    def _check(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) must be called on a list of at least "
                             f"2 tensors, got {inputs!r}")
        shapes = [t.shape for t in inputs]
        ranks = {len(s) for s in shapes}
        if len(ranks) > 1 or any(not _compatible(shapes[0], s) for s in shapes[1:]):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) needs inputs of compatible shapes, "
                             f"got {' and '.join(str(s) for s in shapes)}")

    def call(self, inputs):
        self._check(inputs)
        out = inputs[0]
        for t in inputs[1:]:
            out = self._combine(out, t)
        return self._finish(out, len(inputs))

    def _finish(self, out, n):
        return out


def _compatible(a, b) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(a, b))


class Add(_Merge):
    def _combine(self, a, b):
        return ops.add(a, b)


class Subtract(_Merge):
    def call(self, inputs):
        self._check(inputs)
        if len(inputs) != 2:
            raise ValueError(f"layer '{self.name}' (Subtract) takes exactly 2 inputs, got {len(inputs)}")
        return ops.subtract(inputs[0], inputs[1])


class Multiply(_Merge):
    def _combine(self, a, b):
        return ops.multiply(a, b)


class Average(_Merge):
    def _combine(self, a, b):
        return ops.add(a, b)

    def _finish(self, out, n):
        return ops.divide(out, float(n))


class Maximum(_Merge):
    def _combine(self, a, b):
        return ops.maximum(a, b)


class Minimum(_Merge):
    def _combine(self, a, b):
        return ops.minimum(a, b)


class Concatenate(Layer):
    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = arguments.axis(self, "axis", axis)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 1:
            raise ValueError(f"layer '{self.name}' (Concatenate) must be called on a list of tensors")
        shapes = [t.shape for t in inputs]
        rank = len(shapes[0])
        ax = self.axis % rank if rank else 0
        if any(len(s) != rank or any(x != y for i, (x, y) in enumerate(zip(s, shapes[0])) if i != ax)
               for s in shapes):
            raise ValueError(f"layer '{self.name}' (Concatenate) needs inputs that match except on axis "
                             f"{self.axis}, got {' and '.join(str(s) for s in shapes)}")
        return ops.concatenate(list(inputs), axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
