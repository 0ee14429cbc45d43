"""Symbolic reverse-mode autodiff: emits vector-Jacobian products as ordinary IR nodes."""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import numpy as np

from kcompile.ir import Graph, GraphBuilder, IRError, OPS, Value

from .grad_rules import GRADIENT_RULES
from .grad_rules._emit import zeros

__all__ = ["GRADIENT_RULES", "GradientError", "backprop", "grad_graph", "vjp"]


# Inputs that give an op only a shape, never values: the output does not depend on them.
SHAPE_ONLY_INPUTS = {"random_uniform_like": (0,)}


class GradientError(IRError):
    """A gradient that cannot be formed: a non-differentiable op on the path, or a bad request."""


def backprop(b: GraphBuilder, y: Value, wrt: Sequence[Value], dy: Value | None = None) -> list[Value]:
    """Emit into `b` the gradient of scalar y (or the VJP with cotangent dy) w.r.t. each of `wrt`."""
    start = len(b.nodes)  # (the seed constant is dropped too when nothing needs it)
    return vjp(b, [(y, _seed(b, y, dy))], wrt, start)


def vjp(b: GraphBuilder, seeds: Sequence[tuple], wrt: Sequence[Value], start: int | None = None) -> list[Value]:
    """Emit the cotangents of `wrt` given (value, cotangent) seeds for several values at once."""
    start = len(b.nodes) if start is None else start
    cts: dict[Value, Value] = {}
    for y, dy in seeds:
        if dy.type != y.type:
            raise GradientError(f"cotangent {dy} has type {dy.type}, expected {y.type} (the type of {y})")
        cts[y] = b.add(cts[y], dy) if y in cts else dy
    for node in reversed(_path_nodes([y for y, _ in seeds], wrt)):
        gs = [cts.get(v) for v in node.outputs]
        if all(g is None for g in gs):
            continue
        for v, gv in zip(node.inputs, _apply_rule(b, node, gs)):
            if gv is not None and v.dtype.is_float:
                cts[v] = b.add(cts[v], gv) if v in cts else gv
    grads = [cts[v] if v in cts else zeros(b, v.type, like=v) for v in wrt]
    _drop_unused(b, start, grads)
    return grads


def _seed(b: GraphBuilder, y: Value, dy: Value | None) -> Value:
    if not y.dtype.is_float:
        raise GradientError(f"cannot differentiate {y}: its dtype {y.dtype} is not floating point")
    if dy is not None:
        if dy.type != y.type:
            raise GradientError(f"cotangent dy has type {dy.type}, expected {y.type} (the type of y)")
        return dy
    if not y.type.is_static or y.type.numel() != 1:
        raise GradientError(f"y must be a scalar to differentiate without a cotangent dy, got {y.type}")
    return b.constant(np.ones(y.shape, y.dtype.np), dtype=y.dtype)


def _path_nodes(ys: Sequence[Value], wrt: Sequence[Value]) -> list:
    """Nodes between wrt and ys along float values, in topological order (integers carry no gradient)."""
    live = {v for v in wrt if v.dtype.is_float}
    path = []
    for node in _ancestors(ys):
        shape_only = SHAPE_ONLY_INPUTS.get(node.op, ())
        if any(v in live for i, v in enumerate(node.inputs) if i not in shape_only):
            live.update(v for v in node.outputs if v.dtype.is_float)
            path.append(node)
    return path


def _ancestors(values: Sequence[Value], within: set | None = None) -> list:
    """The nodes `values` depend on (only those in `within`, if given), in topological order."""
    order, seen = [], set()
    stack = [(v.producer, False) for v in reversed(values) if v.producer is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif node not in seen and (within is None or node in within):
            seen.add(node)
            stack.append((node, True))
            stack.extend((v.producer, False) for v in reversed(node.inputs)
                         if v.producer is not None and v.producer not in seen)
    return order


def _apply_rule(b: GraphBuilder, node, gs: list) -> list:
    rule = GRADIENT_RULES.get(node.op)
    if rule is None:
        why = "is not differentiable" if not OPS[node.op].differentiable else "has no gradient rule"
        raise GradientError(f"gradient must flow through {node.where()}, but op '{node.op}' {why}")
    if len(node.outputs) == 1:
        g = gs[0]
    else:
        g = [gv if gv is not None else zeros(b, v.type, like=v) for gv, v in zip(gs, node.outputs)]
    with b.location(f"{node.name}/grad") if node.name else nullcontext():
        in_grads = rule(b, node, g)
    for v, gv in zip(node.inputs, in_grads):
        if gv is not None and gv.type != v.type:
            raise GradientError(f"gradient rule of {node.where()} gave {gv.type} for an input of type {v.type}")
    return in_grads


def _drop_unused(b: GraphBuilder, start: int, keep: list):
    """Remove the nodes this backprop emitted that no requested gradient needs (e.g. d/d(input))."""
    emitted = b.nodes[start:]
    needed = set(_ancestors(keep, within=set(emitted)))
    b.nodes[start:] = [n for n in emitted if n in needed]


def grad_graph(graph: Graph, wrt: Sequence[str], output: int = 0) -> Graph:
    """A graph computing [graph's outputs..., d outputs[output] / d each of wrt] ("grad:<name>")."""
    if not 0 <= output < len(graph.outputs):
        raise GradientError(f"graph @{graph.name} has {len(graph.outputs)} outputs, no output {output}")
    y = graph.outputs[output]
    if y.type.shape != () or y.dtype.name not in ("f32", "f64"):
        raise GradientError(f"grad_graph: output {output} ('{graph.output_names[output]}') must be an f32/f64 "
                            f"scalar, got {y.type}")
    b = _extend(graph)
    grads = backprop(b, y, [_lookup(graph, name) for name in wrt])
    names = list(graph.output_names)
    for name in wrt:
        names.append(_fresh_name(f"grad:{name}", f"grad:{graph.output_names[output]}/{name}", names))
    return b.build(list(graph.outputs) + grads, names)


def _extend(graph: Graph) -> GraphBuilder:
    """A builder that already holds graph's inputs, params and nodes (shared: they are immutable)."""
    b = GraphBuilder(graph.name)
    b.inputs, b.params, b.nodes = list(graph.inputs), list(graph.params), list(graph.nodes)
    b.param_values, b.meta = dict(graph.param_values), dict(graph.meta)
    return b


def _lookup(graph: Graph, name: str) -> Value:
    found = [p for p in graph.params if p.param_name == name] + [v for v in graph.inputs if v.name == name]
    if len(found) != 1:
        known = graph.param_names + graph.input_names()
        what = "is ambiguous (a parameter and an input)" if found else "is not a parameter or input"
        raise GradientError(f"grad_graph: '{name}' {what} of graph @{graph.name}; known: {known}")
    return found[0]


def _fresh_name(preferred: str, fallback: str, taken: list) -> str:
    name = preferred if preferred not in taken else fallback
    while name in taken:
        name = "grad:" + name
    return name
