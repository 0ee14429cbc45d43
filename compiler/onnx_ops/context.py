"""EmitContext: what one ONNX export builds up (nodes, initializers, unique names)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from kcompile.ir import Graph, TensorType, Value

ELEM_TYPE = {
    "f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "i8": TensorProto.INT8, "u8": TensorProto.UINT8,
    "i32": TensorProto.INT32, "i64": TensorProto.INT64, "bool": TensorProto.BOOL,
}


class UnsupportedOpError(ValueError):
    """An op (or an op configuration) that has no faithful ONNX form."""


def elem_type(t: TensorType) -> int:
    return ELEM_TYPE[t.dtype.name]


def value_info(name: str, t: TensorType, batch: int | None = None):
    """ONNX ValueInfo for an IR type; the batch symbol becomes a dim_param (or `batch` when given)."""
    dims = list(t.concrete_shape(batch)) if batch is not None else list(t.shape)
    return helper.make_tensor_value_info(name, elem_type(t), dims)


class EmitContext:
    """Collects ONNX nodes and initializers while the exporter walks an IR graph."""

    def __init__(self, graph: Graph, opset: int, batch: int | None = None, used: set | None = None):
        self.graph = graph
        self.opset = opset
        self.batch = batch             # a fixed batch size, or None to keep N symbolic
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict = {}          # IR Value -> ONNX tensor name
        self._used: set = set() if used is None else used  # a subgraph shares its parent's names (ONNX SSA)
        self._batch: str | None = None
        self._node_label = "node"

    # -- names ---------------------------------------------------------------------------
    def reserve(self, name: str) -> str:
        if name in self._used:
            raise ValueError(f"ONNX export of graph @{self.graph.name}: the name '{name}' is used twice "
                             f"(inputs, parameters and outputs must have distinct names)")
        self._used.add(name)
        return name

    def fresh(self, hint: str) -> str:
        """A new unique tensor name built from `hint`."""
        base = hint or "t"
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def name(self, v: Value) -> str:
        return self.names[v]

    @property
    def label(self) -> str:
        return self._node_label

    def set_label(self, label: str):
        """Name prefix for the ONNX nodes and tensors emitted next (the IR node they come from)."""
        self._node_label = label

    # -- emission ------------------------------------------------------------------------
    def emit(self, op_type: str, inputs, out: str | None = None, n_out: int = 1, outs=None, **attrs):
        """Append one ONNX node; returns its output name (or the list when n_out > 1 or outs given)."""
        if outs is None:
            outs = [out] if out is not None else [self.fresh(f"{self._node_label}/{op_type}") for _ in range(n_out)]
        node_name = self.fresh(f"{self._node_label}/{op_type}_node")
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outs), name=node_name, **attrs))
        return outs if (n_out > 1 or len(outs) > 1) else outs[0]

    def const(self, array, hint: str = "const") -> str:
        """An initializer holding `array` (kept as is: the caller picks the dtype)."""
        name = self.fresh(f"{self._node_label}/{hint}")
        # np.array, not np.ascontiguousarray: that one turns 0-d scalars into 1-d arrays
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def ints(self, values, hint: str = "ints") -> str:
        return self.const(np.asarray(list(values), np.int64), hint)

    def scalar(self, value, dtype: np.dtype, hint: str = "scalar") -> str:
        return self.const(np.asarray(value).astype(dtype), hint)

    def batch_size(self) -> str:
        """An int64[1] tensor holding the run-time batch size, read from the first batched input."""
        if self._batch is None:
            src = next((v for v in self.graph.inputs if v.type.has_batch), None)
            if src is None:
                raise UnsupportedOpError(f"ONNX export of graph @{self.graph.name}: an attribute uses the batch "
                                         "symbol N but no graph input has a batch dimension to bind it")
            shape = self.emit("Shape", [self.names[src]], start=0, end=1)
            self._batch = shape
        return self._batch

    def shape_with_batch(self, shape) -> str:
        """An int64 shape tensor for an attribute shape whose leading entry may be the batch symbol."""
        if shape and isinstance(shape[0], str):
            rest = self.ints(shape[1:], "shape_rest")
            return self.emit("Concat", [self.batch_size(), rest], axis=0)
        return self.ints(shape, "shape")
