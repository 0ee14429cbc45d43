"""What the int8 passes quantize: layer groups (matmul/conv2d + bias add + relu), stable value keys, observed values.

A group is a weight-carrying matmul or conv2d, the add of a 1-d bias that follows it and a relu
after that, each the only user of the value before it. Value keys name tensors the same way every
time a model is traced ("dense/matmul#0"), so ranges calibrated on one trace apply to the next.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kcompile.ir import Graph, Node, Value, get_op

ANCHORS = ("matmul", "conv2d")
INT8_VIEWS = ("reshape", "max_pool2d", "max_pool1d", "concat")   # ops that can carry int8 values unchanged


@dataclass(frozen=True)
class Group:
    """One quantizable layer: anchor (matmul/conv2d), optional bias add, optional relu."""

    anchor: Node
    weight: Value
    bias: Node | None
    relu: Node | None

    @property
    def layer(self) -> str:
        return self.anchor.name or self.anchor.op

    @property
    def input(self) -> Value:
        return self.anchor.inputs[0]

    @property
    def output(self) -> Value:
        return (self.relu or self.bias or self.anchor).outputs[0]

    def bias_param(self) -> Value | None:
        if self.bias is None:
            return None
        a, b = self.bias.inputs
        return b if a is self.anchor.outputs[0] else a


def value_keys(graph: Graph) -> dict:
    """Value -> a key stable across traces of one model: 'input:x' or '<layer>/<op>#<k>[.<output>]'."""
    keys = {v: f"input:{v.name}" for v in graph.inputs}
    counts: dict = {}
    for n in graph.nodes:
        base = f"{n.name or '_'}/{n.op}"
        k = counts[base] = counts.get(base, -1) + 1
        for i, v in enumerate(n.outputs):
            keys[v] = f"{base}#{k}" + (f".{i}" if len(n.outputs) > 1 else "")
    return keys


def is_weight(v: Value) -> bool:
    """A float parameter, or a dequantized int8 parameter (a model quantized in place)."""
    if v.is_param:
        return v.dtype.is_float
    p = v.producer
    return p is not None and p.op == "dequantize" and p.inputs[0].is_param and p.inputs[0].dtype.name == "i8"


def _only_user(graph_outputs, users, v: Value, op: str) -> Node | None:
    nxt = users.get(v, [])
    return nxt[0] if len(nxt) == 1 and nxt[0].op == op and v not in graph_outputs else None


def _bias_of(anchor: Node, add: Node | None) -> Node | None:
    if add is None:
        return None
    other = [v for v in add.inputs if v is not anchor.outputs[0]]
    c = anchor.outputs[0].shape[-1]
    ok = len(other) == 1 and other[0].is_param and other[0].shape == (c,) and other[0].dtype.is_float
    return add if ok else None


def find_groups(graph: Graph) -> list:
    """The quantizable layer groups of graph, in order."""
    users, outs, groups = graph.users(), set(graph.outputs), []
    for n in graph.nodes:
        if n.op not in ANCHORS or not is_weight(n.inputs[1]) or not n.inputs[0].dtype.is_float:
            continue
        if n.op == "matmul" and (n.attrs["transpose_a"] or n.attrs["transpose_b"] or n.inputs[1].type.rank != 2
                                 or n.inputs[0].type.rank < 2):
            continue
        bias = _bias_of(n, _only_user(outs, users, n.outputs[0], "add"))
        relu = _only_user(outs, users, (bias or n).outputs[0], "relu")
        groups.append(Group(n, n.inputs[1], bias, relu))
    return groups


def observed_values(graph: Graph) -> list:
    """The float values whose ranges the int8 pass needs: each group's input and output."""
    seen, out = set(), []
    for g in find_groups(graph):
        for v in (g.input, g.output):
            if v not in seen:
                seen.add(v)
                out.append(v)
    return out


def static_value(v: Value, values: dict) -> np.ndarray:
    """Evaluate v from parameters (`values` by name) and constants with the reference ops."""
    if v.is_param:
        return np.asarray(values[v.param_name])
    n = v.producer
    if n is None:
        raise ValueError(f"{v} depends on a graph input; it has no value at compile time")
    args = [static_value(x, values) for x in n.inputs]
    return np.asarray(get_op(n.op).reference(args, n.attrs, None)[v.index])


def accepts_int8(op: str, node: Node, q: Value) -> bool:
    """Whether op's type rule admits the int8 value q in place of node's first float input."""
    types = [q.type] + [x.type for x in node.inputs[1:]]
    try:
        get_op(op).infer_types(types, node.attrs, op)
        return True
    except Exception:  # the op's own type rule refused int8: the value goes through float
        return False
