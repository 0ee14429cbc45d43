"""Helpers for regions (graph-valued attributes): inline a region, plan one for native code, and the
"merge-scans" pass (one forward loop where a scan's VJP re-ran it to store its carries)."""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

from kcompile.ir import Graph, GraphBuilder, Node, Value

from .manager import PassManager, register_pass
from .rewrite import rebuilt

_PLANNED: "weakref.WeakKeyDictionary[Graph, Graph]" = weakref.WeakKeyDictionary()


def inline_region(b: GraphBuilder, region: Graph, args: Sequence[Value], env: dict | None = None) -> list[Value]:
    """Emit region's nodes into `b` on `args` (one per region input); returns its outputs there.
    env, if given, is filled with every region value's counterpart in `b`."""
    if len(args) != len(region.inputs):
        raise ValueError(f"region @{region.name} takes {len(region.inputs)} inputs, got {len(args)}")
    env = {} if env is None else env
    env.update(zip(region.inputs, args))
    for node in region.nodes:
        outs = b.op(node.op, *[env[v] for v in node.inputs], name=node.name, **node.attrs)
        env.update(zip(node.outputs, outs if isinstance(outs, tuple) else (outs,)))
    return [env[v] for v in region.outputs]


def with_outputs(region: Graph, extra: Sequence[Value], hint: str) -> Graph:
    """region returning `extra` values (its own) after its outputs, named <hint>_<i>."""
    names = list(region.output_names)
    for i in range(len(extra)):
        name = f"{hint}_{i}"
        while name in names:
            name = "_" + name
        names.append(name)
    return Graph(region.name, region.inputs, (), region.nodes, list(region.outputs) + list(extra), None, names)


def plan_region(region: Graph) -> Graph:
    """The region through canonicalize, fuse and plan-memory, once per region object (cached).

    plan-memory sizes a region-holding node's scratch from this plan and codegen compiles the
    same planned region, so both must see one plan: hence the cache, keyed by the region itself.
    """
    planned = _PLANNED.get(region)
    if planned is None:
        planned, _ = PassManager(["canonicalize", "fuse", "plan-memory"]).run(region)
        _PLANNED[region] = planned
    return planned


@dataclass(frozen=True)
class ScanScratch:
    """The scratch memory a scan's native loop needs beside its outputs, in two parts like the
    workspace: static bytes, and bytes per batch row. The planned body's own workspace comes first
    in each part; then one spare buffer per carry (carries ping-pong between it and the output),
    and, when axis > 0, contiguous step buffers for each x_t and y_t."""

    body: Graph                 # the planned body (plan_region)
    static_bytes: int
    per_row_bytes: int
    slots: dict                 # ("carry"|"x"|"y", i) -> ("static" | "batched", offset (per row if batched))


def scan_scratch(node) -> ScanScratch:
    body = plan_region(node.attrs["body"])
    plan, nc, nx = body.meta["memory"], node.attrs["num_carries"], node.attrs["num_xs"]
    size = {"static": _round(plan.static_bytes), "batched": _round(plan.batched_bytes_per_row)}
    buffers = [(("carry", i), v.type) for i, v in enumerate(body.inputs[:nc])]
    if node.attrs["axis"] > 0:
        buffers += [(("x", i), v.type) for i, v in enumerate(body.inputs[nc:nc + nx])]
        buffers += [(("y", j), v.type) for j, v in enumerate(body.outputs[nc:])]
    slots = {}
    for key, t in buffers:
        region = "batched" if t.has_batch else "static"
        slots[key] = (region, size[region])
        size[region] += _round(t.numel(1) * t.dtype.itemsize)  # one batch row when batched
    return ScanScratch(body, size["static"], size["batched"], slots)


def _round(n: int, align: int = 64) -> int:
    return -(-n // align) * align


@register_pass("merge-scans")
def merge_scans(graph: Graph) -> Graph:
    """Replace a scan by a later one over the same inputs whose body extends its body with more results."""
    scans = [n for n in graph.nodes if n.op == "scan"]  # in topological order: shorter ones come first
    replace = {}
    for k, longer in enumerate(scans):
        shorter = next((s for s in scans[:k] if s not in replace and _extends(longer, s)), None)
        if shorter is not None and longer not in replace:
            replace[shorter] = longer
    if not replace:
        return graph
    moved, env, nodes = set(replace.values()), {}, []
    for node in graph.nodes:
        if node in moved:
            continue  # it runs where the scan it replaces ran (its inputs are that scan's inputs)
        src = replace.get(node, node)
        ins = [env.get(v, v) for v in src.inputs]
        new = src if all(a is b for a, b in zip(ins, src.inputs)) else \
            Node(src.op, ins, src.attrs, [v.type for v in src.outputs], src.name)
        env.update(zip(src.outputs, new.outputs))
        env.update(zip(node.outputs, new.outputs))  # the shorter scan's results are the longer one's first
        nodes.append(new)
    return rebuilt(graph, nodes, [env.get(v, v) for v in graph.outputs])


def _extends(longer: Node, shorter: Node) -> bool:
    a, b = longer.attrs, shorter.attrs
    if longer.inputs != shorter.inputs or {k: v for k, v in a.items() if k != "body"} != \
            {k: v for k, v in b.items() if k != "body"}:
        return False
    big, small = a["body"], b["body"]
    n = len(small.outputs)
    return (big.nodes == small.nodes and big.inputs == small.inputs and big.outputs[:n] == small.outputs
            and len(longer.outputs) > len(shorter.outputs))
