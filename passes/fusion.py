"""Pass "fuse": outline groups of nodes into `fused` nodes (ir/ops/fused.py), one kernel each.

A group's members are computed inline at its root, in one loop over the root's shape, with no
intermediate buffers. A node joins its consumers' group only when all its users are in that group,
it is not a graph output, and it has the root's shape (so fusion never recomputes a small tensor
once per element of a large one). A group whose leaf is the sole use of an anchor's output (a
matmul/conv, trait "anchor") of the same type takes that node in: an "epilogue" run on the
anchor's output, whose leading bias add and/or relu the pass hands to the anchor's kernel
(fusion_outline.kernel_epilogue). A group whose result is read only by one reduction becomes that
reduction's "prologue", computed inside the reduction's loop, never stored. Groups of one
elementwise node stay plain nodes.

Each group is outlined into one `fused` node at its root's place, whose region holds the group
(fusion_outline.py); its inputs are the values the group reads from outside. Members never escape
their group (their users are all inside, none is a graph output), so the outlined graph stays
acyclic and every input is defined before the fused node.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcompile.ir import Graph, Node, get_op
from kcompile.ir.ops.fused import kernel_requantize

from .fusion_outline import kernel_epilogue_fits, outline
from .manager import register_pass


@dataclass(frozen=True)
class Group:
    """Nodes to outline as one kernel, in topological order; `nodes[-1]` writes the result."""

    kind: str      # loop | epilogue | prologue
    nodes: tuple


@register_pass("fuse")
def fuse(graph: Graph) -> Graph:
    """The graph with each fusible group outlined into a `fused` node."""
    users = graph.users()
    groups = [_with_anchor_or_consumer(graph, users, members) for members in _elementwise_groups(graph, users)]
    groups = _with_requantize(graph, users, groups)
    return outline(graph, [g for g in groups if g.kind != "loop" or len(g.nodes) > 1])


def _elementwise_groups(graph: Graph, users: dict) -> list:
    """Lists of elementwise nodes (topological order, root last) that one loop can compute."""
    outputs = set(graph.outputs)
    root_of: dict = {}      # node -> its group's root node
    members: dict = {}      # root node -> member nodes, reversed topological order
    for node in reversed(graph.nodes):
        if not get_op(node.op).has("elementwise"):
            continue
        out = node.outputs[0]
        roots = {root_of.get(u) for u in users.get(out, [])}
        root = roots.pop() if len(roots) == 1 else None
        if root is not None and out not in outputs and root.outputs[0].type.shape == out.type.shape:
            root_of[node] = root
            members[root].append(node)
        else:
            root_of[node] = node
            members[node] = [node]
    return [m[::-1] for m in members.values()]


def _with_anchor_or_consumer(graph: Graph, users: dict, members: list) -> Group:
    anchor = _anchor(graph, users, members)
    if anchor is not None:
        return Group("epilogue", (anchor, *members))
    out = members[-1].outputs[0]
    readers = users.get(out, [])
    if len(readers) == 1 and get_op(readers[0].op).has("reduction") and out not in graph.outputs:
        return Group("prologue", (*members, readers[0]))
    return Group("loop", tuple(members))


def _anchor(graph: Graph, users: dict, members: list) -> Node | None:
    """The anchor whose output the group consumes in place: read only by the group, of the root's type."""
    inside = set(members)
    root_type = members[-1].outputs[0].type
    for node in members:
        for v in node.inputs:
            p = v.producer
            if (p is not None and get_op(p.op).has("anchor") and v.type == root_type and v not in graph.outputs
                    and all(u in inside for u in users.get(v, []))):
                return p
    return None


def _with_requantize(graph: Graph, users: dict, groups: list) -> list:
    """An integer anchor (alone or with its epilogue) whose i32 result only a last-axis requantize
    reads takes that requantize in: the kernel writes the 8-bit result (kernel_epilogue decides)."""
    by_root = {g.nodes[-1]: g for g in groups if g.kind == "epilogue"}
    out = list(groups)
    for node in graph.nodes:
        acc = node.inputs[0] if node.op == "requantize" else None
        p = acc.producer if acc is not None else None
        if p is None or acc in graph.outputs or users.get(acc) != [node] or not kernel_requantize(node):
            continue
        group = by_root.get(p) or (Group("epilogue", (p,)) if get_op(p.op).has("anchor") else None)
        if group is None or not kernel_epilogue_fits(graph, group.nodes + (node,)):
            continue
        if group in out:
            out.remove(group)
        out.append(Group("epilogue", group.nodes + (node,)))
    return out


def fused_nodes(graph: Graph) -> list:
    """The graph's fused nodes, in order."""
    return [n for n in graph.nodes if n.op == "fused"]
