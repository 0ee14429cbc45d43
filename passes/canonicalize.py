"""Canonicalization: constant folding, algebraic identities, CSE and DCE, each a small Graph -> Graph pass.

Folding and identities are tables of `Rule(ops, rewrite)` rows for the driver in rewrite.py.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph, Value, get_op, ops_with

from .manager import register_pass
from .regions import merge_scans
from .rewrite import Match, Rewriter, Rule, constant_value, rebuilt, rewrite_graph, splat_value

MAX_FOLD_ELEMENTS = 1 << 16  # larger results stay computed at run time rather than bloat the graph
NEVER_FOLD = {"constant", "broadcast_to",  # a splat of a scalar is already the compact form
              "cross_process_sum"}         # its value depends on the other processes
VIEWS = tuple(sorted(ops_with("view")))     # reshape-like: the same elements in the same order


# -- constant folding -----------------------------------------------------------------------
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
    inner = _producer(m.inputs[0], *VIEWS)
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


def _before_split_reshape(rw, m: Match):
    """op(reshape(y), c) -> reshape(op(y, c')) when the reshape only splits y's last axis and c is a
    scalar or varies exactly along the split axes (a per-head bias [H, D] on [N, T, H, D] made from a
    projection's [N, T, H*D]): the op then meets the matmul that made y, as its fused epilogue."""
    for i in (0, 1):
        x, c = m.inputs[i], m.inputs[1 - i]
        view = _producer(x, "reshape")
        if view is None or x.type != m.types[0]:
            continue
        y = view.inputs[0]
        lead, last = y.type.shape[:-1], y.type.shape[-1] if y.type.rank else None
        split = x.type.shape[len(lead):]
        if (not isinstance(last, int) or x.type.shape[:len(lead)] != lead or len(split) < 2
                or not all(isinstance(d, int) for d in split) or int(np.prod(split)) != last):
            continue
        if c.type.rank == 0:
            c2 = c
        elif tuple(c.type.shape) == tuple(split):
            c2 = rw.new(m, "reshape", c, shape=[last])
        else:
            continue
        return rw.new(m, "reshape", rw.new(m, m.op, *((y, c2) if i == 0 else (c2, y))), shape=m.types[0].shape)
    return None


IDENTITY_RULES = [
    Rule(("add",), _either_identity(0)),
    Rule(("sub",), _right_identity(0)),
    Rule(("sub",), _zero_minus),
    Rule(("mul",), _either_identity(1)),
    Rule(("div", "pow"), _right_identity(1)),
    Rule(("neg",), _double_neg),
    Rule((*VIEWS, *sorted(ops_with("reduction")), "broadcast_to", "slice", "pad", "cast"), _same_type_is_identity),
    Rule(("transpose",), _identity_transpose),
    Rule(("concat", "split"), _single_operand),
    Rule((*VIEWS, "broadcast_to", "transpose"), _splat_layout),
    Rule(("broadcast_to",), _broadcast_chain),
    Rule(VIEWS, _reshape_chain),
    Rule(("transpose",), _transpose_chain),
    Rule(("add", "sub", "mul", "div"), _before_split_reshape),
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
    return rebuilt(graph, kept[::-1], graph.outputs)


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
    """Constant folding, algebraic identities and CSE in one walk, merge-scans, then DCE."""
    return dce(merge_scans(rewrite_graph(graph, FOLD_RULES + IDENTITY_RULES, cse=True)))
