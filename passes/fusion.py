"""Pass "fuse": group elementwise chains into single loops and attach epilogues to matmul/conv.

The decisions live in graph.meta["fusion"] (a tuple of FusionGroup, by node index), so the nodes
are unchanged and the IR text is too; format_fusion() prints the table. A group's members are
computed inline at its root, in one loop over the root's shape, with no intermediate buffers. A
node joins its consumers' group only when all its users are in that group, it is not a graph
output, and it has the root's shape (so fusion never recomputes a small tensor once per element
of a large one). A group whose leaf is the sole use of a matmul/conv output of the same shape
takes that node as its anchor: the epilogue runs in place on the anchor's output buffer.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcompile.ir import Graph
from kcompile.ir.ops.elementwise import BINARY, UNARY

from .manager import register_pass

ELEMENTWISE = frozenset(UNARY) | frozenset(BINARY) | {"where", "cast", "broadcast_to"}
ANCHORS = frozenset({"matmul", "conv1d", "conv2d"})


@dataclass(frozen=True)
class FusionGroup:
    root: int                 # node index: the group writes this node's output
    members: tuple            # node indices computed inline, topological order, root last
    anchor: int | None = None  # matmul/conv node whose output the members consume in place


@register_pass("fuse")
def fuse(graph: Graph) -> Graph:
    """The same graph with meta["fusion"] set."""
    groups = _elementwise_groups(graph)
    groups = tuple(_with_anchor(graph, g) for g in groups)
    return Graph(graph.name, graph.inputs, graph.params, graph.nodes, graph.outputs, graph.param_values,
                 graph.output_names, {**graph.meta, "fusion": groups})


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
        if node.op not in ELEMENTWISE:
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
            if (p is not None and p.op in ANCHORS and v.type == root_type and v not in graph.outputs
                    and all(id(u) in inside for u in users.get(v, []))):
                return FusionGroup(group.root, group.members, index[id(p)])
    return group


def groups_of(graph: Graph) -> tuple:
    return tuple(graph.meta.get("fusion", ()))


def format_fusion(graph: Graph) -> str:
    """The fusion table as text, one line per multi-node group or epilogue."""
    lines = []
    for g in groups_of(graph):
        if len(g.members) == 1 and g.anchor is None:
            continue
        ops = " -> ".join(graph.nodes[i].op for i in g.members)
        anchor = f"{graph.nodes[g.anchor].op}#{g.anchor} epilogue: " if g.anchor is not None else ""
        lines.append(f"// fuse root #{g.root}: {anchor}{ops}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Step:
    """One unit of generated code, run at node `root`'s place in the topological order."""

    root: int
    nodes: tuple                  # node indices it computes: the anchor (if any), then members
    group: FusionGroup | None = None


def schedule(graph: Graph) -> list:
    """The steps codegen emits, in order: fused groups at their root, other nodes alone."""
    by_root = {g.root: g for g in groups_of(graph)}
    inner = {i for g in by_root.values() for i in g.members if i != g.root}
    inner |= {g.anchor for g in by_root.values() if g.anchor is not None}
    steps = []
    for i in range(len(graph.nodes)):
        g = by_root.get(i)
        if g is not None:
            steps.append(Step(i, ((g.anchor,) if g.anchor is not None else ()) + g.members, g))
        elif i not in inner:
            steps.append(Step(i, (i,)))
    return steps
