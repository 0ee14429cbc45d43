"""The NumPy reference interpreter: the golden oracle for native code and ONNX export."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from kcompile.ir import Graph, TensorType, get_op


class InputError(ValueError):
    """An input that does not match the graph's signature."""


def check_inputs(graph: Graph, inputs) -> tuple[list, int | None]:
    """Match inputs (list in order, or dict by name) to the signature; returns arrays and batch size."""
    if isinstance(inputs, Mapping):
        missing = [v.name for v in graph.inputs if v.name not in inputs]
        extra = sorted(set(inputs) - {v.name for v in graph.inputs})
        if missing or extra:
            raise InputError(f"graph @{graph.name}: missing inputs {missing}, unexpected inputs {extra}")
        arrays = [inputs[v.name] for v in graph.inputs]
    else:
        arrays = list(inputs)
        if len(arrays) != len(graph.inputs):
            raise InputError(f"graph @{graph.name} takes {len(graph.inputs)} inputs "
                             f"({', '.join(graph.input_names())}), got {len(arrays)}")
    batch = None
    out = []
    for v, a in zip(graph.inputs, arrays):
        a = np.asarray(a)
        batch = _check_one(graph, v.name, v.type, a, batch)
        out.append(a)
    return out, batch


def _check_one(graph: Graph, name: str, t: TensorType, a: np.ndarray, batch):
    where = f"graph @{graph.name}, input '{name}'"
    if a.dtype != t.dtype.np:
        raise InputError(f"{where}: expected dtype {t.dtype.name} ({t.dtype.np}), got {a.dtype}")
    if a.ndim != t.rank:
        raise InputError(f"{where}: expected rank {t.rank} {t}, got shape {a.shape}")
    for i, (want, got) in enumerate(zip(t.shape, a.shape)):
        if isinstance(want, str):
            if batch is not None and got != batch:
                raise InputError(f"{where}: batch size {got} differs from other inputs' batch {batch}")
            batch = got
        elif want != got:
            raise InputError(f"{where}: expected shape {t}, got {a.shape} (dimension {i})")
    return batch


def run(graph: Graph, inputs, params: Mapping | None = None, batch: int | None = None) -> list:
    """Execute `graph` on inputs; parameters default to the values stored beside the graph."""
    arrays, found_batch = check_inputs(graph, inputs)
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
            expect = v.type.concrete_shape(batch) if v.type.has_batch else v.type.shape
            if r.dtype != v.type.dtype.np or r.shape != tuple(expect):
                raise AssertionError(f"reference of {node.where()} returned {r.dtype}{list(r.shape)}, "
                                     f"type says {v.type} (batch {batch})")
            env[v] = r
    return [env[v] for v in graph.outputs]
