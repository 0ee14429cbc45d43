"""The skeleton both prepack passes share: add a packed companion parameter beside a GEMM's weight.

prepack-int8 (int8_prepack.py) and prepack-f32 (f32_prepack.py) differ only in which nodes' weights
they pack and how; each gives `companion(node)`, and this adds the parameters (once per name, never
for a parameter the graph updates in place, nor for one another entry of the same compiled library
updates: meta "params_updated_elsewhere", set by the driver; a C program calling an artifact's
train step and then its forward would otherwise read stale packs) with their values where the graph
carries the weight's.
"""
from __future__ import annotations

from kcompile.ir import Graph, Value


def with_packed_params(graph: Graph, companion) -> Graph:
    """graph plus a parameter per companion(node) = (weight Value, packed name, TensorType,
    pack(name, weight array) -> array), or None for nodes it leaves alone."""
    updated = set(graph.meta.get("param_updates", {}).values()) | set(graph.meta.get("params_updated_elsewhere", ()))
    have = {p.param_name for p in graph.params}
    values, added = dict(graph.param_values), []
    for node in graph.nodes:
        spec = companion(node)
        if spec is None:
            continue
        w, name, type_, pack = spec
        if not w.is_param or w.param_name in updated or name in have:
            continue
        have.add(name)
        added.append(Value(type_, None, param_name=name))
        if w.param_name in graph.param_values:
            values[name] = pack(name, graph.param_values[w.param_name])
    if not added:
        return graph
    return Graph(graph.name, graph.inputs, list(graph.params) + added, graph.nodes, graph.outputs, values,
                 graph.output_names, graph.meta)
