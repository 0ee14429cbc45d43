"""Pass "fuse": group elementwise chains into single loops and attach epilogues to matmul/conv.

The decisions live in graph.meta["fusion"] (a tuple of FusionGroup, by node index), so the nodes
are unchanged and the IR text is too; format_fusion() prints the table. A group's members are
computed inline at its root, in one loop over the root's shape, with no intermediate buffers. A
node joins its consumers' group only when all its users are in that group, it is not a graph
output, and it has the root's shape (so fusion never recomputes a small tensor once per element
of a large one). A group whose leaf is the sole use of a matmul/conv output of the same shape
takes that node as its anchor: the epilogue runs in place on the anchor's output buffer. A group
whose result is read only by one reduction becomes that reduction's prologue: it is computed
inside the reduction's loop (leaves broadcast there as in any fused loop), never stored.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcompile.ir import Graph, get_op

from .manager import register_pass


@dataclass(frozen=True)
class FusionGroup:
    root: int                 # node index: the group writes this node's output
    members: tuple            # node indices computed inline, topological order, root last
    anchor: int | None = None  # matmul/conv node whose output the members consume in place
    consumer: int | None = None  # reduction that reads the group's result inline (a prologue)


@register_pass("fuse")
def fuse(graph: Graph) -> Graph:
    """The same graph with meta["fusion"] set."""
    groups = _elementwise_groups(graph)
    groups = tuple(_with_consumer(graph, _with_anchor(graph, g)) for g in groups)
    return Graph(graph.name, graph.inputs, graph.params, graph.nodes, graph.outputs, graph.param_values,
                 graph.output_names, {**graph.meta, "fusion": groups, "fusion_nodes": graph.nodes})


def _users_by_index(graph: Graph) -> dict:
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    return {v: [index[id(n)] for n in ns] for v, ns in graph.users().items()}


def _elementwise_groups(graph: Graph):
    users = _users_by_index(graph)
    outputs = set(graph.outputs)
    group_of: dict[int, int] = {}      # node index -> root index
    members: dict[int, list] = {}
    for i in reversed(range(len(graph.nodes))):
        node = graph.nodes[i]
        if not get_op(node.op).has("elementwise"):
            continue
        out = node.outputs[0]
        roots = {group_of.get(u) for u in users.get(out, [])}
        root = roots.pop() if len(roots) == 1 else None
        if (root is not None and out not in outputs
                and graph.nodes[root].outputs[0].type.shape == out.type.shape):
            group_of[i] = root
            members[root].append(i)
        else:
            group_of[i] = i
            members[i] = [i]
    return [FusionGroup(r, tuple(sorted(m))) for r, m in sorted(members.items())]


def _with_anchor(graph: Graph, group: FusionGroup) -> FusionGroup:
    users = graph.users()
    inside = {id(graph.nodes[i]) for i in group.members}
    root_type = graph.nodes[group.root].outputs[0].type
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    for i in group.members:
        for v in graph.nodes[i].inputs:
            p = v.producer
            if (p is not None and get_op(p.op).has("anchor") and v.type == root_type and v not in graph.outputs
                    and all(id(u) in inside for u in users.get(v, []))):
                return FusionGroup(group.root, group.members, index[id(p)])
    return group


def _with_consumer(graph: Graph, group: FusionGroup) -> FusionGroup:
    if group.anchor is not None:
        return group
    out = graph.nodes[group.root].outputs[0]
    users = graph.users().get(out, [])
    if len(users) != 1 or not get_op(users[0].op).has("reduction") or out in graph.outputs:
        return group
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    return FusionGroup(group.root, group.members, None, index[id(users[0])])


def groups_of(graph: Graph) -> tuple:
    """The fusion table; an error if a later pass changed the nodes it indexes."""
    if "fusion" not in graph.meta:
        return ()
    if graph.meta.get("fusion_nodes") is not graph.nodes:
        raise ValueError(f"graph @{graph.name}: the fusion table is stale (the nodes changed after 'fuse'); "
                         "run fuse after the rewriting passes")
    return tuple(graph.meta["fusion"])


def format_fusion(graph: Graph) -> str:
    """The fusion table as text, one line per multi-node group or epilogue."""
    lines = []
    for g in groups_of(graph):
        if len(g.members) == 1 and g.anchor is None and g.consumer is None:
            continue
        ops = " -> ".join(graph.nodes[i].op for i in g.members)
        anchor = f"{graph.nodes[g.anchor].op}#{g.anchor} epilogue: " if g.anchor is not None else ""
        into = f" -> prologue of {graph.nodes[g.consumer].op}#{g.consumer}" if g.consumer is not None else ""
        lines.append(f"// fuse root #{g.root}: {anchor}{ops}{into}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Step:
    """One unit of generated code, run at node `root`'s place in the topological order."""

    root: int
    nodes: tuple                  # node indices it computes: the anchor (if any), then members
    group: FusionGroup | None = None


def schedule(graph: Graph) -> list:
    """The steps codegen emits, in order: fused groups at their root, other nodes alone."""
    groups = groups_of(graph)
    by_root = {g.root: g for g in groups if g.consumer is None}
    by_consumer = {g.consumer: g for g in groups if g.consumer is not None}
    inner = {i for g in groups for i in g.members if i != g.root or g.consumer is not None}
    inner |= {g.anchor for g in groups if g.anchor is not None}
    steps = []
    for i in range(len(graph.nodes)):
        if i in by_consumer:
            steps.append(Step(i, by_consumer[i].members + (i,), by_consumer[i]))
        elif i in by_root:
            g = by_root[i]
            steps.append(Step(i, ((g.anchor,) if g.anchor is not None else ()) + g.members, g))
        elif i not in inner:
            steps.append(Step(i, (i,)))
    return steps
