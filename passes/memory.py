"""Pass "plan-memory": place intermediate tensors in one workspace arena by liveness.

A tensor's size is its static bytes times the product of its symbolic dims: the batch N and, in a
graph with a dynamic sequence length, T (a term of the sizes polynomial: 1, N, T, N*T, ...). The
arena holds one region per term, [static: B][batched: A*N][then e.g. C*T][D*N*T]..., each packed by
a greedy first-fit over live intervals (a placement valid for the coefficients stays valid scaled by
the term). The workspace size is B + A*N + sum(C_i * term_i), evaluated from the run-time sizes.
Views (reshape, expand_dims, squeeze) share their source's storage; graph outputs live in the
caller's buffers, constants in the code, fused intermediates nowhere.
"""
from __future__ import annotations

from kcompile.ir import Graph, get_op

from .manager import register_pass
from .memory_plan import MemoryPlan, region_of, where
from .regions import scan_scratch
from .update_in_place import in_place_updates

ALIGN = 64
# Ops whose native code needs scratch memory while they run: op -> node -> (static bytes, bytes per
# batch row). The plan reserves it under the keys (node, SCRATCH_STATIC) and (node, SCRATCH_BATCHED).
SCRATCH_STATIC, SCRATCH_BATCHED = "scratch", "scratch/N"


def _scan_scratch_bytes(node) -> tuple:
    s = scan_scratch(node)
    return s.static_bytes, s.per_row_bytes


SCRATCH = {"scan": _scan_scratch_bytes}


@register_pass("plan-memory")
def plan_memory(graph: Graph) -> Graph:
    """The same graph with meta["memory"] = MemoryPlan, keyed by Value (a rewritten node is simply unplanned)."""
    home = storage_roots(graph)
    in_place = in_place_updates(graph, home)   # written into their parameters: no workspace
    intervals = {v: iv for v, iv in _live_intervals(graph, home).items() if v not in in_place}
    regions: dict = {"static": {}, "batched": {}}
    for v, (start, end) in intervals.items():
        t = v.type
        unit = t.dtype.itemsize * _prod(d for d in t.shape if not isinstance(d, str))
        regions.setdefault(region_of(t), {})[v] = (unit, start, end)
    _reserve_scratch(graph, regions["static"], regions["batched"])
    offsets, sizes = {}, {}
    for region, items in regions.items():
        placed, sizes[region] = _first_fit(items)
        offsets.update({v: (region, o) for v, o in placed.items()})
    terms = tuple((r, _round(sizes[r])) for r in sorted(r for r in regions if isinstance(r, tuple)))
    plan = MemoryPlan(_round(sizes["static"]), sizes["batched"], offsets, terms, in_place)
    return Graph(graph.name, graph.inputs, graph.params, graph.nodes, graph.outputs, graph.param_values,
                 graph.output_names, {**graph.meta, "memory": plan})


def _reserve_scratch(graph: Graph, static: dict, batched: dict):
    """Scratch of the nodes that need it (SCRATCH), live while their own node runs."""
    for k, node in enumerate(graph.nodes):
        if node.op in SCRATCH:
            fixed, per_row = SCRATCH[node.op](node)
            if fixed:
                static[(node, SCRATCH_STATIC)] = (fixed, k, k)
            if per_row:
                batched[(node, SCRATCH_BATCHED)] = (per_row, k, k)


def caller_outputs(graph: Graph) -> set:
    """Outputs written to the caller's buffers (not the ones that update parameters in place)."""
    updates = graph.meta.get("param_updates", {})
    return {v for v, name in zip(graph.outputs, graph.output_names) if name not in updates}


def storage_roots(graph: Graph) -> dict:
    """Map each node output Value to the Value whose storage it uses (itself unless a view)."""
    outputs = caller_outputs(graph)
    home = {}
    for n in graph.nodes:
        for v in n.outputs:
            view = get_op(n.op).has("view") and v not in outputs
            home[v] = home.get(n.inputs[0], n.inputs[0]) if view else v
    return home


def _live_intervals(graph: Graph, home) -> dict:
    """Value -> (first node, last node) for every tensor that needs workspace, in node order."""
    outputs = caller_outputs(graph)
    intervals = {}
    for k, node in enumerate(graph.nodes):
        for v in node.outputs:
            if home[v] is v and v not in outputs and node.op != "constant":
                intervals[v] = [k, k]
    for k, n in enumerate(graph.nodes):
        for v in n.inputs:
            root = home.get(v, v)
            if root in intervals:
                intervals[root][1] = max(intervals[root][1], k)
    for v in set(graph.outputs) - outputs:  # parameter updates are copied after the last node
        root = home.get(v, v)
        if root in intervals:
            intervals[root][1] = len(graph.nodes)
    return {v: tuple(iv) for v, iv in intervals.items()}


def _first_fit(items: dict):
    """Greedy placement, largest first: offsets and the total size."""
    placed, offsets, total = [], {}, 0
    order = {key: k for k, key in enumerate(items)}  # ties: in node order
    for key, (size, start, end) in sorted(items.items(), key=lambda kv: (-kv[1][0], order[kv[0]])):
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
    lines = [f"// workspace = {plan.formula()}"]
    for i, node in enumerate(graph.nodes):
        for j, v in enumerate(node.outputs):
            if v in plan.offsets:
                lines.append(f"//   #{i}.{j} {node.op}: offset {where(plan, *plan.offsets[v])}")
            elif v in plan.in_place:
                lines.append(f"//   #{i}.{j} {node.op}: in place of param \"{plan.in_place[v]}\"")
        for key in ((node, SCRATCH_STATIC), (node, SCRATCH_BATCHED)):
            if key in plan.offsets:
                lines.append(f"//   #{i} {node.op} {key[1]}: offset {where(plan, *plan.offsets[key])}")
    return "\n".join(lines)
