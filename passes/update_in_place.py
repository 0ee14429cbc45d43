"""Which parameter updates plan-memory places in their parameter's own storage (no workspace, no copy).

A train step's update outputs (graph.meta["param_updates"]: output name -> parameter) used to be
computed into the workspace and copied over the parameters after the last node: for the MNIST
MLP's RMSprop that is 2 x 1.6 MB written, read back and written again every step. An update is
written straight into its parameter instead when that cannot change any result:

- its producer is elementwise (an elementwise op, or a fused "loop"), so element i of the output
  depends on element i of an operand of the output's type only: where the producer reads the
  parameter, it reads it at the index it writes, before writing it;
- it reads the parameter only as itself, of the output's exact type (no view, no broadcast);
- no node after it reads the parameter (or a view of it), and no output returns it: they would
  see the new value;
- the value is returned once, is no view, and is the only update of that parameter.

Everything that reads the update later (RMSprop's new second moment feeds the weight update)
reads it from the parameter's storage, which now holds it.
"""
from __future__ import annotations

from collections import Counter

from kcompile.ir import Graph, get_op


def in_place_updates(graph: Graph, home: dict) -> dict:
    """Update Value -> parameter name, for the updates codegen may write into the parameter itself.

    home: Value -> the Value whose storage it uses (memory.storage_roots)."""
    updates = graph.meta.get("param_updates", {})
    if not updates:
        return {}
    params = {p.param_name: p for p in graph.params}
    order = {node: k for k, node in enumerate(graph.nodes)}
    returned = Counter(graph.outputs)
    targets = Counter(updates.values())
    chosen = {}
    for v, name in zip(graph.outputs, graph.output_names):
        p = params.get(updates.get(name))
        node = v.producer
        if (p is None or node is None or returned[v] != 1 or targets[p.param_name] != 1 or home.get(v, v) is not v
                or p.type != v.type or not _elementwise(node) or not _reads_at_own_index(node, p, home)
                or _read_after(graph, order[node], p, home)):
            continue
        chosen[v] = p.param_name
    return chosen


def _elementwise(node) -> bool:
    if node.op == "fused":
        return node.attrs["kind"] == "loop"
    return len(node.outputs) == 1 and get_op(node.op).has("elementwise")


def _reads_at_own_index(node, p, home) -> bool:
    """Every operand stored in p is p itself, of the output's type (read element for element)."""
    return all(u is p and u.type == node.outputs[0].type for u in node.inputs if home.get(u, u) is p)


def _read_after(graph: Graph, k: int, p, home) -> bool:
    """p is read by a node after the k-th, or returned (outputs are copied after the last node)."""
    return any(home.get(u, u) is p for node in graph.nodes[k + 1:] for u in node.inputs) or \
        any(home.get(u, u) is p for u in graph.outputs)
