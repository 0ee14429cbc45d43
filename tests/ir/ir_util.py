"""Helpers shared by the IR tests: graph equality, the text round trip, one-op graphs."""
from __future__ import annotations

import re

import numpy as np

from kcompile.ir import dtype as ir_dtype
from kcompile.ir import Graph, GraphBuilder, TensorType, attrs_equal, parse_graph, print_graph
from kcompile.runtime.reference import run


def assert_same_graph(a: Graph, b: Graph):
    """Structural equality: names, types, param names, ops, attrs, locations and wiring."""
    assert a.name == b.name
    assert a.output_names == b.output_names
    index_a, index_b = _value_index(a), _value_index(b)
    for va, vb in zip(list(a.values()), list(b.values()), strict=True):
        # an empty name prints as a counter and parses back as None
        assert va.type == vb.type and (va.name or None) == (vb.name or None) and va.param_name == vb.param_name
    assert len(a.nodes) == len(b.nodes)
    for na, nb in zip(a.nodes, b.nodes):
        assert (na.op, na.name) == (nb.op, nb.name)
        assert attrs_equal(na.attrs, nb.attrs), f"{na.attrs} != {nb.attrs}"
        assert [index_a[v] for v in na.inputs] == [index_b[v] for v in nb.inputs]
    assert [index_a[v] for v in a.outputs] == [index_b[v] for v in b.outputs]


def _value_index(g: Graph) -> dict:
    return {v: i for i, v in enumerate(g.values())}


def roundtrip(g: Graph) -> Graph:
    """Print, parse, compare, and check that the parsed graph prints to the same text."""
    text = print_graph(g)
    parsed = parse_graph(text)
    assert_same_graph(g, parsed)
    assert print_graph(parsed) == text
    return parsed


def one_op_graph(op: str, types, attrs: dict) -> Graph:
    """A graph whose inputs are the op's operands and whose outputs are all its results."""
    b = GraphBuilder(f"test_{op}")
    ins = [b.input(f"x{i}", t) for i, t in enumerate(types)]
    out = b.op(op, *ins, name=f"{op}_node", **attrs)
    return b.build(list(out) if isinstance(out, tuple) else [out])


def run_op(op: str, arrays, attrs: dict, batched=()) -> list:
    """Run one op through a graph (text round-tripped) on `arrays`.

    Inputs whose index is in `batched` get the symbolic batch N as their leading dimension;
    "N" inside attribute shapes is replaced by the concrete batch when no input is batched.
    """
    batch = arrays[batched[0]].shape[0] if batched else None
    types = [TensorType((("N",) + a.shape[1:]) if i in batched else a.shape, a.dtype) for i, a in enumerate(arrays)]
    g = roundtrip(one_op_graph(op, types, attrs if batched else concretize(attrs, arrays)))
    return run(g, arrays, batch=batch)


def concretize(attrs: dict, arrays) -> dict:
    n = arrays[0].shape[0] if arrays and arrays[0].ndim else 1
    return {k: tuple(n if d == "N" else d for d in v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def rand(rng, shape, dtype="f32", lo=-2.0, hi=2.0):
    """Random test data: uniform floats, small integers, or fair booleans."""
    dt = ir_dtype(dtype).np
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        return rng.integers(max(int(lo), np.iinfo(dt).min), min(int(hi), np.iinfo(dt).max) + 1, shape).astype(dt)
    return rng.uniform(lo, hi, shape).astype(dt)


def ty(text: str) -> TensorType:
    """TensorType from its printed form, e.g. ty("f32[N,3]")."""
    m = re.fullmatch(r"(\w+)\[(.*)\]", text)
    return TensorType([d if d.isidentifier() else int(d) for d in m[2].split(",") if d], m[1])
