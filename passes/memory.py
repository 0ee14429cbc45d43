"""Pass "plan-memory": place intermediate tensors in one workspace arena by liveness.

Every tensor with a leading batch dimension takes N times its per-row size, so the arena is laid
out as [static region: B bytes][batched region: A*N bytes], each packed by a greedy first-fit over
live intervals (a placement valid for row sizes stays valid scaled by N). The workspace size is
A*N + B. Views (reshape, expand_dims, squeeze) share their source's storage; graph outputs live in
the caller's buffers, constants in the code, fused intermediates nowhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kcompile.ir import Graph

from .fusion import schedule
from .manager import register_pass
from .regions import scan_scratch

ALIGN = 64
VIEW_OPS = frozenset({"reshape", "expand_dims", "squeeze"})
# Ops whose native code needs scratch memory while they run: op -> node -> (static bytes, bytes per
# batch row). The plan reserves it under the keys (node index, SCRATCH_STATIC / SCRATCH_BATCHED).
SCRATCH_STATIC, SCRATCH_BATCHED = -1, -2


def _scan_scratch_bytes(node) -> tuple:
    s = scan_scratch(node)
    return s.static_bytes, s.per_row_bytes


SCRATCH = {"scan": _scan_scratch_bytes}


@dataclass(frozen=True)
class MemoryPlan:
    static_bytes: int                 # B
    batched_bytes_per_row: int        # A
    offsets: dict = field(default_factory=dict)  # (node index, output index) -> ("static"|"batched", offset)
    nodes: tuple = ()                 # the nodes the indices refer to (a later rewrite invalidates the plan)

    def workspace_bytes(self, batch: int) -> int:
        return self.batched_bytes_per_row * batch + self.static_bytes

    def byte_offset(self, key, batch: int) -> int:
        region, off = self.offsets[key]
        return off if region == "static" else self.static_bytes + off * batch


@register_pass("plan-memory")
def plan_memory(graph: Graph) -> Graph:
    """The same graph with meta["memory"] = MemoryPlan (needs meta["fusion"] or plans node by node)."""
    steps = schedule(graph)
    home = storage_roots(graph, steps)
    intervals = _live_intervals(graph, steps, home)
    static, batched = {}, {}
    for key, (start, end) in intervals.items():
        v = graph.nodes[key[0]].outputs[key[1]]
        t = v.type
        row = t.dtype.itemsize * _prod(t.shape[1:] if t.has_batch else t.shape)
        (batched if t.has_batch else static)[key] = (row, start, end)
    _reserve_scratch(graph, steps, static, batched)
    s_off, s_size = _first_fit(static)
    b_off, b_size = _first_fit(batched)
    offsets = {k: ("static", o) for k, o in s_off.items()} | {k: ("batched", o) for k, o in b_off.items()}
    plan = MemoryPlan(_round(s_size), b_size, offsets, graph.nodes)
    return Graph(graph.name, graph.inputs, graph.params, graph.nodes, graph.outputs, graph.param_values,
                 graph.output_names, {**graph.meta, "memory": plan})


def _reserve_scratch(graph: Graph, steps, static: dict, batched: dict):
    """Scratch of the nodes that need it (SCRATCH), live during their own step only."""
    for k, step in enumerate(steps):
        node = graph.nodes[step.root]
        if step.group is None and node.op in SCRATCH:
            fixed, per_row = SCRATCH[node.op](node)
            if fixed:
                static[(step.root, SCRATCH_STATIC)] = (fixed, k, k)
            if per_row:
                batched[(step.root, SCRATCH_BATCHED)] = (per_row, k, k)


def caller_outputs(graph: Graph) -> set:
    """Outputs written to the caller's buffers (not the ones that update parameters in place)."""
    updates = graph.meta.get("param_updates", {})
    return {v for v, name in zip(graph.outputs, graph.output_names) if name not in updates}


def storage_roots(graph: Graph, steps) -> dict:
    """Map each node output Value to the Value whose storage it uses (itself unless a view)."""
    outputs = caller_outputs(graph)
    alone = {s.root for s in steps if s.group is None}
    home = {}
    for i, n in enumerate(graph.nodes):
        for v in n.outputs:
            view = n.op in VIEW_OPS and i in alone and v not in outputs
            home[v] = home.get(n.inputs[0], n.inputs[0]) if view else v
    return home


def _live_intervals(graph: Graph, steps, home) -> dict:
    """(node, output) -> (first step, last step) for every tensor that needs workspace."""
    step_of = {i: k for k, s in enumerate(steps) for i in s.nodes}
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    outputs = caller_outputs(graph)
    intervals = {}
    for k, s in enumerate(steps):
        node = graph.nodes[s.root]
        for j, v in enumerate(node.outputs):
            if home[v] is v and v not in outputs and node.op != "constant":
                intervals[v] = [k, k]
    for i, n in enumerate(graph.nodes):
        for v in n.inputs:
            root = home.get(v, v)
            if root in intervals:
                intervals[root][1] = max(intervals[root][1], step_of[i])
    for v in set(graph.outputs) - outputs:  # parameter updates are copied after the last step
        root = home.get(v, v)
        if root in intervals:
            intervals[root][1] = len(steps)
    return {(index[id(v.producer)], v.index): tuple(iv) for v, iv in intervals.items()}


def _first_fit(items: dict):
    """Greedy placement, largest first: offsets and the total size."""
    placed, offsets, total = [], {}, 0
    for key, (size, start, end) in sorted(items.items(), key=lambda kv: (-kv[1][0], kv[0])):
        clashes = sorted((o, o + sz) for o, sz, s, e in placed if s <= end and start <= e)
        off = 0
        for lo, hi in clashes:
            if off + size <= lo:
                break
            off = max(off, _round(hi))
        placed.append((off, size, start, end))
        offsets[key] = off
        total = max(total, off + size)
    return offsets, total


def _round(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _prod(dims) -> int:
    p = 1
    for d in dims:
        p *= d
    return p


def format_memory(graph: Graph) -> str:
    plan = graph.meta.get("memory")
    if plan is None:
        return ""
    lines = [f"// workspace = {plan.batched_bytes_per_row}*N + {plan.static_bytes} bytes"]
    for (i, j), (region, off) in sorted(plan.offsets.items()):
        where = f"{off}" if region == "static" else f"{plan.static_bytes} + {off}*N"
        what = f"#{i}.{j}" if j >= 0 else f"#{i} scratch"
        lines.append(f"//   {what} {graph.nodes[i].op}: offset {where}")
    return "\n".join(lines)
