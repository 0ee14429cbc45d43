"""The rewrite driver (tinygrad's graph_rewrite): re-emit a graph node by node through (pattern, rewrite) rules.

Every node it emits, rewritten ones included, goes through the rules again, so one walk in
topological order reaches a fixpoint bottom-up. Nothing is mutated: untouched nodes are shared
with the input graph, and dead nodes are left for DCE.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from kcompile.ir import Graph, Node, Value, attrs_equal, get_op


@dataclass(frozen=True)
class Match:
    """A node about to be emitted: its op, (rewritten) inputs, attributes, location and output types."""

    op: str
    inputs: tuple
    attrs: dict
    name: str | None
    types: tuple


@dataclass(frozen=True)
class Rule:
    """One (pattern, rewrite) row: `rewrite(rw, m)` returns replacement Value(s) or None for no match."""

    ops: tuple          # op names matched; empty = every op
    rewrite: Callable


class Rewriter:
    """Emits nodes through the rules (and CSE), collecting the nodes of the new graph."""

    def __init__(self, rules: Sequence[Rule], cse: bool):
        self.rules = list(rules)
        self.cse = cse
        self.nodes: list[Node] = []
        self.seen: dict = {}

    def emit(self, op: str, inputs: tuple, attrs: dict, name: str | None, original: Node | None = None) -> tuple:
        opdef = get_op(op)
        attrs = opdef.normalize_attrs(attrs, f"op '{op}'")
        m = Match(op, tuple(inputs), attrs, name, tuple(opdef.infer_types([v.type for v in inputs], attrs, op)))
        for rule in self.rules:
            if not rule.ops or op in rule.ops:
                out = rule.rewrite(self, m)
                if out is not None:
                    return _checked(out, m, rule)
        return self._node(m, original)

    def new(self, m: Match, op: str, *inputs: Value, **attrs) -> Value:
        """For rewrites: emit another node at m's location (rewritten in turn)."""
        outs = self.emit(op, inputs, attrs, m.name)
        return outs[0] if len(outs) == 1 else outs

    def _node(self, m: Match, original: Node | None) -> tuple:
        key = (m.op, m.inputs, _attrs_key(m.attrs)) if self.cse else None
        if key is not None and key in self.seen and attrs_equal(self.seen[key].attrs, m.attrs):
            return self.seen[key].outputs
        if original is not None and all(a is b for a, b in zip(m.inputs, original.inputs)):
            node = original
        else:
            node = Node(m.op, m.inputs, m.attrs, m.types, m.name)
        self.nodes.append(node)
        if key is not None:
            self.seen[key] = node
        return node.outputs


def _checked(out, m: Match, rule: Rule) -> tuple:
    out = (out,) if isinstance(out, Value) else tuple(out)
    got = tuple(v.type for v in out)
    if got != m.types:
        raise AssertionError(f"rewrite {rule.rewrite.__name__} turned {m.op} {list(m.types)} into {list(got)}")
    return out


def _attrs_key(attrs: dict):
    return tuple((k, ("array", v.dtype.str, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v)
                 for k, v in sorted(attrs.items()))


def rewrite_graph(graph: Graph, rules: Sequence[Rule], cse: bool = False) -> Graph:
    """Re-emit every node of graph through `rules` (and CSE); dead nodes are left for `dce`."""
    rw = Rewriter(rules, cse)
    env: dict = {}
    for node in graph.nodes:
        outs = rw.emit(node.op, tuple(env.get(v, v) for v in node.inputs), node.attrs, node.name, node)
        env.update(zip(node.outputs, outs))
    return rebuilt(graph, rw.nodes, [env.get(v, v) for v in graph.outputs])


def rebuilt(graph: Graph, nodes, outputs) -> Graph:
    """graph with other nodes and outputs; inputs, params, values, names and meta kept."""
    return Graph(graph.name, graph.inputs, graph.params, nodes, outputs, graph.param_values,
                 graph.output_names, graph.meta)


# -- pattern helpers ----------------------------------------------------------------------
def constant_value(v: Value):
    """The literal array behind v if a `constant` node produces it, else None."""
    return v.producer.attrs["value"] if v.producer is not None and v.producer.op == "constant" else None


def splat_value(v: Value):
    """The single value every element of v has, if v is a constant or a broadcast constant."""
    if v.producer is not None and v.producer.op == "broadcast_to":
        v = v.producer.inputs[0]
    a = constant_value(v)
    if a is None or a.size == 0 or not np.all(a == a.flat[0]):
        return None
    return a.flat[0]
