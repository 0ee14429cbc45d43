"""Shape specialization: bind the batch symbol "N" (specialize-batch) or the symbolic non-batch
dimensions, such as a dynamic sequence length T (specialize-dims), to fixed sizes in every type and
attribute, regions included."""
from __future__ import annotations

from kcompile.ir import Graph, GraphBuilder, TensorType

from .manager import PassError, register_pass


@register_pass("specialize-batch")
def specialize_batch(graph: Graph, batch: int) -> Graph:
    """The same graph with the batch symbol N replaced by `batch` everywhere (types and attributes)."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise PassError(f"pass 'specialize-batch': batch must be a positive integer, got {batch!r}")
    return _rebuild(graph, lambda t: TensorType(t.concrete_shape(batch), t.dtype),
                    lambda v: _bind_batch(v, batch))


def _bind_batch(value, batch: int):
    """A shape-like attribute (a tuple holding the symbol) with the symbol replaced by `batch`; regions too."""
    if isinstance(value, Graph):
        return specialize_batch(value, batch)
    if isinstance(value, tuple) and value and isinstance(value[0], str):   # only the leading symbol is the batch
        return (batch,) + value[1:]
    return value


@register_pass("specialize-dims")
def specialize_dims(graph: Graph, dims: dict) -> Graph:
    """The same graph with symbolic non-batch dimensions (a dynamic sequence length T) bound to sizes."""
    bad = {k: v for k, v in dims.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise PassError(f"pass 'specialize-dims': sizes must be positive integers, got {bad}")
    return _rebuild(graph, lambda t: t.with_shape(_bind_tail(t.shape, dims)), lambda v: _bind_dims(v, dims))


def _bind_tail(shape: tuple, dims: dict) -> tuple:
    return shape[:1] + tuple(dims.get(d, d) if isinstance(d, str) else d for d in shape[1:])


def _bind_dims(value, dims: dict):
    if isinstance(value, Graph):
        return specialize_dims(value, dims)
    if isinstance(value, tuple) and any(isinstance(d, str) for d in value[1:]):
        return _bind_tail(value, dims)
    return value


def _rebuild(graph: Graph, bind_type, bind_attr) -> Graph:
    """graph re-emitted with its input types and node attributes bound (the builder re-infers the rest)."""
    b = GraphBuilder(graph.name)
    b.meta = dict(graph.meta)
    env = {v: b.input(v.name, bind_type(v.type)) for v in graph.inputs}
    env.update({p: b.param(p.param_name, graph.param_values.get(p.param_name), type=p.type) for p in graph.params})
    for node in graph.nodes:
        attrs = {k: bind_attr(v) for k, v in node.attrs.items()}
        out = b.op(node.op, *[env[v] for v in node.inputs], name=node.name, **attrs)
        env.update(zip(node.outputs, out if isinstance(out, tuple) else (out,)))
    return b.build([env[v] for v in graph.outputs], graph.output_names)
