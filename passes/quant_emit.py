"""The int8 passes' emitter: type-checked re-emit that tracks each old value's float and int8 forms."""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, Node, TensorType, Value

from .rewrite import Rewriter

class Emitter:
    """New nodes go through a CSE'd Rewriter; old Values map to new float Values or (int8, scale, zp)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.rw = Rewriter([], cse=True)
        self.env: dict = {}
        self.q: dict = {}
        self.new_params: list = []
        self.new_values: dict = {}

    def emit(self, op: str, inputs, attrs: dict, name, original: Node | None = None) -> Value:
        outs = self.rw.emit(op, tuple(inputs), attrs, name, original)
        return outs[0] if len(outs) == 1 else outs

    def const(self, value, name=None) -> Value:
        return self.emit("constant", (), {"value": np.asarray(value)}, name)

    def param(self, name: str, value: np.ndarray) -> Value:
        v = Value(TensorType(value.shape, value.dtype), name.replace("/", "_"), param_name=name)
        self.new_params.append(v)
        self.new_values[name] = value
        return v

    def keep(self, v: Value) -> Value:
        return v                                        # an existing parameter, shared with the old graph

    # -- the two forms of an old value ---------------------------------------------------------
    def set_float(self, old: Value, new: Value):
        self.env[old] = new

    def set_int8(self, old: Value, q: Value, scale, zp):
        self.q[old] = (q, np.float32(scale), np.int8(zp))

    def is_int8(self, old: Value) -> bool:
        return old in self.q

    def int8(self, old: Value) -> Value:
        return self.q[old][0]

    def qparams(self, old: Value) -> tuple:
        return self.q[old][1:]

    def int8_of(self, old: Value, qparams: tuple, name) -> tuple:
        """(int8 Value, scale, zero point) of old: its int8 form if it has one, else quantize(old)."""
        if old not in self.q:
            scale, zp = qparams
            y = self.emit("quantize", (self.float_of(old), self.const(scale, name), self.const(zp, name)), {}, name)
            self.set_int8(old, y, scale, zp)
        return self.q[old]

    def float_of(self, old: Value) -> Value:
        if old in self.env:
            return self.env[old]
        if old in self.q:
            q, scale, zp = self.q[old]
            name = old.producer.name if old.producer is not None else None
            self.env[old] = self.emit("dequantize", (q, self.const(scale, name), self.const(zp, name)), {}, name)
            return self.env[old]
        return old                                      # a graph input or parameter

    def float_node(self, node: Node):
        outs = self.rw.emit(node.op, tuple(self.float_of(v) for v in node.inputs), node.attrs, node.name, node)
        self.env.update(zip(node.outputs, outs))

    def finish(self, outputs) -> Graph:
        g = self.graph
        params = list(g.params) + self.new_params
        values = {**g.param_values, **self.new_values}
        return Graph(g.name, g.inputs, params, self.rw.nodes, outputs, values, g.output_names, g.meta)
