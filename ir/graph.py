"""Value, Node and Graph: the SSA data structures of the IR.

Values are immutable and compared by identity. A Graph is built once (by GraphBuilder or the
parser) and never mutated by passes: a pass builds a new Graph.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .types import TensorType


class Value:
    """An SSA value: produced by exactly one node, or a graph input, or a parameter."""

    __slots__ = ("type", "name", "producer", "index", "param_name", "__weakref__")

    def __init__(self, type: TensorType, name: str | None = None, producer: "Node | None" = None,
                 index: int = 0, param_name: str | None = None):
        self.type = type
        self.name = name
        self.producer = producer
        self.index = index
        self.param_name = param_name

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self):
        return self.type.dtype

    @property
    def is_param(self) -> bool:
        return self.param_name is not None

    def __repr__(self) -> str:
        return f"Value(%{self.name or hex(id(self))[-6:]}: {self.type})"


class Node:
    """One op application: op name, input Values, attributes and its output Values."""

    __slots__ = ("op", "inputs", "attrs", "outputs", "name")

    def __init__(self, op: str, inputs: Sequence[Value], attrs: dict, out_types: Sequence[TensorType],
                 name: str | None = None, out_names: Sequence[str | None] | None = None):
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs)
        self.name = name
        names = list(out_names) if out_names is not None else [None] * len(out_types)
        self.outputs = tuple(Value(t, n, self, i) for i, (t, n) in enumerate(zip(out_types, names)))

    def where(self) -> str:
        return f"node '{self.name}' ({self.op})" if self.name else f"node {self.op}"

    def __repr__(self) -> str:
        return f"Node({self.op}, {[str(v.type) for v in self.inputs]} -> {[str(v.type) for v in self.outputs]})"


class Graph:
    """A static computation: inputs, named parameters (values kept beside), nodes, outputs."""

    def __init__(self, name: str, inputs: Sequence[Value], params: Sequence[Value], nodes: Sequence[Node],
                 outputs: Sequence[Value], param_values: dict | None = None,
                 output_names: Sequence[str] | None = None, meta: dict | None = None):
        self.name = name
        self.inputs = tuple(inputs)
        self.params = tuple(params)
        self.nodes = tuple(nodes)
        self.outputs = tuple(outputs)
        self.param_values = dict(param_values or {})
        self.output_names = tuple(output_names) if output_names else tuple(
            f"output_{i}" for i in range(len(self.outputs)))
        self.meta = dict(meta or {})

    # -- lookups -------------------------------------------------------------------------
    def param(self, name: str) -> Value:
        for p in self.params:
            if p.param_name == name:
                return p
        raise KeyError(f"graph @{self.name} has no parameter '{name}'")

    @property
    def param_names(self) -> list[str]:
        return [p.param_name for p in self.params]

    def input_names(self) -> list[str]:
        return [v.name for v in self.inputs]

    def users(self) -> dict:
        """Map each Value to the list of nodes that read it."""
        uses: dict = {}
        for n in self.nodes:
            for v in n.inputs:
                uses.setdefault(v, []).append(n)
        return uses

    def values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.params
        for n in self.nodes:
            yield from n.outputs

    def with_param_values(self, values: dict) -> "Graph":
        """The same graph with other initial parameter values (shapes and dtypes are checked)."""
        for p in self.params:
            if p.param_name in values:
                a = np.asarray(values[p.param_name])
                if a.shape != p.type.shape:
                    raise ValueError(f"parameter '{p.param_name}': expected shape {p.type.shape}, got {a.shape}")
        merged = {**self.param_values, **{k: np.asarray(v, dtype=self.param(k).dtype.np) for k, v in values.items()}}
        return Graph(self.name, self.inputs, self.params, self.nodes, self.outputs, merged,
                     self.output_names, self.meta)

    def __str__(self) -> str:
        from .text import print_graph
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.inputs)} inputs, {len(self.params)} params, {len(self.nodes)} nodes>"
