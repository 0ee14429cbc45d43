"""Batch specialization: bind the batch symbol "N" to a fixed size in every type and attribute."""
from __future__ import annotations

from kcompile.ir import Graph, GraphBuilder, TensorType

from .manager import PassError, register_pass


@register_pass("specialize-batch")
def specialize_batch(graph: Graph, batch: int) -> Graph:
    """The same graph with the batch symbol N replaced by `batch` everywhere (types and attributes)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise PassError(f"pass 'specialize-batch': batch must be a positive integer, got {batch!r}")
    b = GraphBuilder(graph.name)
    b.meta = dict(graph.meta)
    env = {v: b.input(v.name, TensorType(v.type.concrete_shape(batch), v.type.dtype)) for v in graph.inputs}
    env.update({p: b.param(p.param_name, graph.param_values.get(p.param_name), type=p.type) for p in graph.params})
    for node in graph.nodes:
        attrs = {k: _bind_batch(v, batch) for k, v in node.attrs.items()}
        out = b.op(node.op, *[env[v] for v in node.inputs], name=node.name, **attrs)
        env.update(zip(node.outputs, out if isinstance(out, tuple) else (out,)))
    return b.build([env[v] for v in graph.outputs], graph.output_names)


def _bind_batch(value, batch: int):
    """A shape-like attribute (a tuple holding the symbol) with the symbol replaced by `batch`; regions too."""
    if isinstance(value, Graph):
        return specialize_batch(value, batch)
    if isinstance(value, tuple) and any(isinstance(d, str) for d in value):
        return tuple(batch if isinstance(d, str) else d for d in value)
    return value


@register_pass("specialize-dims")
def specialize_dims(graph: Graph, dims: dict) -> Graph:
    """The same graph with symbolic non-batch dimensions (a dynamic sequence length T) bound to sizes."""
    bad = {k: v for k, v in dims.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise PassError(f"pass 'specialize-dims': sizes must be positive integers, got {bad}")
    b = GraphBuilder(graph.name)
    b.meta = dict(graph.meta)
    env = {v: b.input(v.name, _bind_type(v.type, dims)) for v in graph.inputs}
    env.update({p: b.param(p.param_name, graph.param_values.get(p.param_name), type=p.type) for p in graph.params})
    for node in graph.nodes:
        attrs = {k: _bind_dims(v, dims) for k, v in node.attrs.items()}
        out = b.op(node.op, *[env[v] for v in node.inputs], name=node.name, **attrs)
        env.update(zip(node.outputs, out if isinstance(out, tuple) else (out,)))
    return b.build([env[v] for v in graph.outputs], graph.output_names)


def _bind_type(t: TensorType, dims: dict) -> TensorType:
    return t.with_shape(t.shape[:1] + tuple(dims.get(d, d) if isinstance(d, str) else d for d in t.shape[1:]))


def _bind_dims(value, dims: dict):
    if isinstance(value, Graph):
        return specialize_dims(value, dims)
    if isinstance(value, tuple) and any(isinstance(d, str) for d in value[1:]):
        return value[:1] + tuple(dims.get(d, d) if isinstance(d, str) else d for d in value[1:])
    return value
