"""Canonicalization: constant folding, algebraic identities, CSE and DCE, each a small Graph -> Graph pass.

Folding and identities are tables of `Rule(ops, rewrite)` rows applied by one driver,
`rewrite_graph` (tinygrad's graph_rewrite): it re-emits the graph node by node in order, and
every node it emits, rewritten ones included, goes through the rules again, so one walk reaches
a fixpoint bottom-up. Passes never mutate: untouched nodes are shared with the input graph.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from kcompile.ir import Graph, Node, TensorType, Value, attrs_equal, get_op

from .manager import register_pass

MAX_FOLD_ELEMENTS = 1 << 16  # larger results stay computed at run time rather than bloat the graph
NEVER_FOLD = {"constant", "broadcast_to"}  # a splat of a scalar is already the compact form


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
        self.location: str | None = None

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
    return _rebuilt(graph, rw.nodes, [env.get(v, v) for v in graph.outputs])


def _rebuilt(graph: Graph, nodes, outputs) -> Graph:
    return Graph(graph.name, graph.inputs, graph.params, nodes, outputs, graph.param_values,
                 graph.output_names, graph.meta)


# -- constant folding -----------------------------------------------------------------------
def constant_value(v: Value):
    """The literal array behind v if a `constant` node produces it, else None."""
    return v.producer.attrs["value"] if v.producer is not None and v.producer.op == "constant" else None


def _fold(rw: Rewriter, m: Match):
    if m.op in NEVER_FOLD or not all(t.is_static and t.numel() <= MAX_FOLD_ELEMENTS for t in m.types):
        return None
    arrays = [constant_value(v) for v in m.inputs]
    if any(a is None for a in arrays):
        return None
    try:
        with np.errstate(all="ignore"):
            results = get_op(m.op).reference([np.array(a) for a in arrays], m.attrs, None)
    except (ValueError, IndexError, TypeError, ArithmeticError):
        return None  # e.g. an out-of-range gather: leave it to fail at run time with its own message
    return [rw.new(m, "constant", value=np.asarray(r, t.dtype.np).reshape(t.shape)) for r, t in zip(results, m.types)]


FOLD_RULES = [Rule((), _fold)]


# -- algebraic identities ----------------------------------------------------------------------
def splat_value(v: Value):
    """The single value every element of v has, if v is a constant or a broadcast constant."""
    if v.producer is not None and v.producer.op == "broadcast_to":
        v = v.producer.inputs[0]
    a = constant_value(v)
    if a is None or a.size == 0 or not np.all(a == a.flat[0]):
        return None
    return a.flat[0]


def _operand_if(m: Match, keep: int, other_is) -> Value | None:
    """m.inputs[keep] when the other operand is the splat `other_is` and the result type is unchanged."""
    other = splat_value(m.inputs[1 - keep])
    x = m.inputs[keep]
    return x if other is not None and other == other_is and x.type == m.types[0] else None


def _right_identity(unit):
    return lambda rw, m: _operand_if(m, 0, unit)


def _either_identity(unit):
    return lambda rw, m: _operand_if(m, 0, unit) or _operand_if(m, 1, unit)


def _same_type_is_identity(rw, m: Match):
    """Layout ops whose result type equals their input's move no data (slice and pad included)."""
    x = m.inputs[0]
    return x if x.type == m.types[0] else None


def _identity_transpose(rw, m: Match):
    return m.inputs[0] if tuple(m.attrs["perm"]) == tuple(range(len(m.attrs["perm"]))) else None


def _single_operand(rw, m: Match):
    return m.inputs[0] if len(m.inputs) == 1 and m.inputs[0].type == m.types[0] else None


def _producer(v: Value, *ops: str):
    return v.producer if v.producer is not None and v.producer.op in ops else None


def _double_neg(rw, m: Match):
    inner = _producer(m.inputs[0], "neg")
    return inner.inputs[0] if inner else None


def _reshape_chain(rw, m: Match):
    """reshape(reshape(x)) -> reshape(x); expand_dims and squeeze are reshapes too."""
    inner = _producer(m.inputs[0], "reshape", "expand_dims", "squeeze")
    return rw.new(m, "reshape", inner.inputs[0], shape=m.types[0].shape) if inner else None


def _transpose_chain(rw, m: Match):
    inner = _producer(m.inputs[0], "transpose")
    if inner is None:
        return None
    first = inner.attrs["perm"]
    return rw.new(m, "transpose", inner.inputs[0], perm=[first[p] for p in m.attrs["perm"]])


def _splat_layout(rw, m: Match):
    """Moving or broadcasting a splat gives a splat: broadcast its scalar straight to the result shape."""
    x = m.inputs[0]
    scalar = x.producer.inputs[0] if _producer(x, "broadcast_to") else x
    if x.type == m.types[0] or scalar.shape != () or constant_value(scalar) is None or (x is scalar and m.op == "broadcast_to"):
        return None  # (x is scalar: already a splat of a scalar, the canonical form)
    return rw.new(m, "broadcast_to", scalar, shape=m.types[0].shape)


def _broadcast_chain(rw, m: Match):
    inner = _producer(m.inputs[0], "broadcast_to")
    return rw.new(m, "broadcast_to", inner.inputs[0], shape=m.types[0].shape) if inner else None


def _zero_minus(rw, m: Match):
    x = m.inputs[1]
    return rw.new(m, "neg", x) if splat_value(m.inputs[0]) == 0 and x.type == m.types[0] else None


IDENTITY_RULES = [
    Rule(("add",), _either_identity(0)),
    Rule(("sub",), _right_identity(0)),
    Rule(("sub",), _zero_minus),
    Rule(("mul",), _either_identity(1)),
    Rule(("div", "pow"), _right_identity(1)),
    Rule(("neg",), _double_neg),
    Rule(("reshape", "expand_dims", "squeeze", "broadcast_to", "slice", "pad", "cast", "reduce_sum",
          "reduce_mean", "reduce_max", "reduce_min"), _same_type_is_identity),
    Rule(("transpose",), _identity_transpose),
    Rule(("concat", "split"), _single_operand),
    Rule(("reshape", "expand_dims", "squeeze", "broadcast_to", "transpose"), _splat_layout),
    Rule(("broadcast_to",), _broadcast_chain),
    Rule(("reshape", "expand_dims", "squeeze"), _reshape_chain),
    Rule(("transpose",), _transpose_chain),
]


# -- the passes ------------------------------------------------------------------------------------
@register_pass("dce")
def dce(graph: Graph) -> Graph:
    """Dead-code elimination: drop nodes none of whose outputs reach a graph output."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return _rebuilt(graph, kept[::-1], graph.outputs)


@register_pass("fold-constants")
def fold_constants(graph: Graph) -> Graph:
    """Evaluate nodes whose inputs are all constants (results up to MAX_FOLD_ELEMENTS) at compile time."""
    return dce(rewrite_graph(graph, FOLD_RULES))


@register_pass("simplify")
def simplify(graph: Graph) -> Graph:
    """Algebraic identities: x*1, x+0, 0-x, double neg, no-op layout ops and casts, layout chains, splats."""
    return dce(rewrite_graph(graph, IDENTITY_RULES))


@register_pass("cse")
def cse(graph: Graph) -> Graph:
    """Common-subexpression elimination: one node per (op, inputs, attributes)."""
    return dce(rewrite_graph(graph, [], cse=True))


@register_pass("canonicalize")
def canonicalize(graph: Graph) -> Graph:
    """Constant folding, algebraic identities and CSE in one walk, then DCE."""
    return dce(rewrite_graph(graph, FOLD_RULES + IDENTITY_RULES, cse=True))
