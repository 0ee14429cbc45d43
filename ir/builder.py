"""GraphBuilder: construct graphs by hand or from a tracer; every emit is type-checked."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .dtypes import dtype as to_dtype
from .errors import IRError
from .graph import Graph, Node, Value
from .registry import get_op
from .types import TensorType


class GraphBuilder:
    """Collects inputs, parameters and nodes, then `build(outputs)` makes a verified Graph.

    >>> b = GraphBuilder("mlp")
    >>> x = b.input("x", TensorType(["N", 4]))
    >>> w = b.param("dense/kernel", np.zeros((4, 2), np.float32))
    >>> y = b.relu(b.matmul(x, w))
    >>> g = b.build([y])
    """

    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.params: list[Value] = []
        self.param_values: dict = {}
        self.nodes: list[Node] = []
        self.meta: dict = {}
        self._location: str | None = None

    # -- leaves --------------------------------------------------------------------------
    def input(self, name: str, type: TensorType) -> Value:
        if any(v.name == name for v in self.inputs):
            raise IRError(f"graph @{self.name}: duplicate input '{name}'")
        v = Value(type, name)
        self.inputs.append(v)
        return v

    def param(self, name: str, value=None, type: TensorType | None = None, dtype="f32") -> Value:
        """A named parameter; `value` (array) gives both its type and its initial value."""
        if any(p.param_name == name for p in self.params):
            raise IRError(f"graph @{self.name}: duplicate parameter '{name}'")
        if value is not None:
            arr = np.asarray(value)
            dt = to_dtype(arr.dtype) if type is None else type.dtype
            arr = np.array(arr, dtype=dt.np, order="C")  # ascontiguousarray would make 0-d values 1-d
            if type is not None and tuple(type.shape) != arr.shape:
                raise IRError(f"parameter '{name}': type {type} does not match value shape {arr.shape}")
            type = TensorType(arr.shape, dt)
            self.param_values[name] = arr
        elif type is None:
            raise IRError(f"parameter '{name}' needs a value or a type")
        v = Value(type, _param_hint(name), param_name=name)
        self.params.append(v)
        return v

    def constant(self, value, dtype=None) -> Value:
        arr = np.asarray(value, dtype=None if dtype is None else to_dtype(dtype).np)
        if arr.dtype == np.float64 and dtype is None:  # Python floats default to f32, as in Keras
            arr = arr.astype(np.float32)
        return self.op("constant", value=arr)

    # -- nodes ---------------------------------------------------------------------------
    def location(self, name: str | None):
        """Context for naming the nodes emitted inside it (e.g. the Keras layer name)."""
        return _Location(self, name)

    def op(self, op: str, *inputs: Value, name: str | None = None, **attrs):
        """Emit one node; returns its Value, or a tuple when the op has several outputs."""
        opdef = get_op(op)
        loc = name or self._location
        where = f"node '{loc}'" if loc else "unnamed node"  # the messages that follow name the op
        for i, v in enumerate(inputs):
            if not isinstance(v, Value):
                raise IRError(f"{where}: input {i} of '{op}' must be a Value, got {type(v).__name__}")
        attrs = opdef.normalize_attrs(attrs, where)
        out_types = opdef.infer_types([v.type for v in inputs], attrs, where)
        node = Node(op, inputs, attrs, out_types, loc)
        self.nodes.append(node)
        return node.outputs[0] if len(node.outputs) == 1 else node.outputs

    def __getattr__(self, op: str):
        if op.startswith("_"):
            raise AttributeError(op)
        get_op(op)  # raises IRError for unknown ops
        return lambda *inputs, **attrs: self.op(op, *inputs, **attrs)

    def build(self, outputs: Sequence[Value] | Value, output_names: Sequence[str] | None = None,
              verify: bool = True) -> Graph:
        outs = [outputs] if isinstance(outputs, Value) else list(outputs)
        g = Graph(self.name, self.inputs, self.params, self.nodes, outs, self.param_values,
                  output_names, self.meta)
        if verify:
            from .verifier import verify as run_verifier
            run_verifier(g)
        return g


class _Location:
    def __init__(self, builder: GraphBuilder, name):
        self.builder, self.name, self.saved = builder, name, None

    def __enter__(self):
        self.saved = self.builder._location
        self.builder._location = self.name
        return self

    def __exit__(self, *exc):
        self.builder._location = self.saved


def _param_hint(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)
