"""The NumPy reference interpreter: the golden oracle for native code and ONNX export.

It lives beside the IR (importing only ir) so that passes can evaluate graphs and regions, and
ops whose semantics run a region (scan) call `run` on it from their reference function.
kcompile.runtime.reference re-exports it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .graph import Graph
from .registry import get_op
from .signature import SignatureError, check_signature


class InputError(SignatureError):
    """An input (or parameter) that does not match the graph's signature."""


def check_inputs(graph: Graph, inputs, dims: dict | None = None) -> tuple[list, int | None]:
    """Match inputs (list in order, or dict by name) to the signature exactly; returns arrays and batch size
    (and binds the inputs' other symbolic dimensions in `dims`)."""
    signature = [(v.name, v.type) for v in graph.inputs]
    try:
        return check_signature(f"graph @{graph.name}", signature, inputs, dims=dims)
    except SignatureError as e:
        raise InputError(*e.args) from None


def run(graph: Graph, inputs, params: Mapping | None = None, batch: int | None = None) -> list:
    """Execute `graph` on inputs; parameters default to the values stored beside the graph."""
    dims: dict = {}
    arrays, found_batch = check_inputs(graph, inputs, dims)
    batch = found_batch if found_batch is not None else batch
    if batch is None and any(v.type.has_batch for v in graph.values()):
        raise InputError(f"graph @{graph.name} has values with a symbolic batch dimension but no input carries "
                         f"it; pass batch=<size>")
    env: dict = {}
    for v, a in zip(graph.inputs, arrays):
        env[v] = a
    values = {**graph.param_values, **(params or {})}
    for p in graph.params:
        if p.param_name not in values:
            raise InputError(f"graph @{graph.name}: no value for parameter '{p.param_name}'")
        a = np.asarray(values[p.param_name])
        if a.shape != p.type.shape or a.dtype != p.type.dtype.np:
            raise InputError(f"graph @{graph.name}: parameter '{p.param_name}' expects {p.type}, "
                             f"got {a.dtype}{list(a.shape)}")
        env[p] = a
    for node in graph.nodes:
        args = [env[v] for v in node.inputs]
        try:
            results = get_op(node.op).reference(args, node.attrs, batch)
        except (ValueError, IndexError, TypeError) as e:
            raise type(e)(f"{node.where()}: {e}") from None
        for v, r in zip(node.outputs, results):
            r = np.asarray(r)
            expect = _expected_shape(v.type, r.shape, batch, dims)
            if r.dtype != v.type.dtype.np or r.shape != tuple(expect):
                raise AssertionError(f"reference of {node.where()} returned {r.dtype}{list(r.shape)}, "
                                     f"type says {v.type} (batch {batch})")
            env[v] = r
    return [env[v] for v in graph.outputs]


def _expected_shape(t, got: tuple, batch, dims: dict) -> tuple:
    """The shape a value must have: symbols the inputs did not bind (a region's own) bind here, once."""
    for want, have in zip(t.shape[1:], got[1:]):
        if isinstance(want, str):
            dims.setdefault(want, have)
    return t.concrete_shape(batch, dims) if t.has_batch or t.dynamic_dims else t.shape
