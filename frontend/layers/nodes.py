"""Nodes of a functional graph (a layer applied to symbolic tensors) and nested-structure helpers."""
from __future__ import annotations


def flatten(struct) -> list:
    """Leaves of nested lists/tuples/dicts, in order."""
    if isinstance(struct, (list, tuple)):
        return [leaf for item in struct for leaf in flatten(item)]
    if isinstance(struct, dict):
        return [leaf for key in struct for leaf in flatten(struct[key])]
    return [struct]


def map_structure(fn, struct):
    if isinstance(struct, list):
        return [map_structure(fn, s) for s in struct]
    if isinstance(struct, tuple):
        return tuple(map_structure(fn, s) for s in struct)
    if isinstance(struct, dict):
        return {k: map_structure(fn, v) for k, v in struct.items()}
    return fn(struct)


def _is_symbolic(t) -> bool:
    from ..tensor import KTensor
    return isinstance(t, KTensor) and t.is_symbolic


class LayerNode:
    """One call of a layer on symbolic tensors; the tracer replays it on traced tensors."""

    def __init__(self, layer, args: tuple, kwargs: dict):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs: list = []
        self.outputs_struct = None

    @property
    def name(self) -> str:
        return self.layer.name

    def symbolic_inputs(self) -> list:
        return [t for t in flatten((self.args, self.kwargs)) if _is_symbolic(t)]

    def input_struct(self):
        return self.args[0] if self.args else None

    def replay(self, lookup, training):
        def sub(t):
            return lookup(t) if _is_symbolic(t) else t
        kwargs = map_structure(sub, self.kwargs)
        kwargs.setdefault("training", training)
        outs = self.layer(*map_structure(sub, self.args), **kwargs)
        return flatten(outs)
