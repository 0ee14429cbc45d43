"""Outlining for the fuse pass: each group becomes one `fused` node whose region holds the group,
with the kernel epilogue decided here, so codegen lowers what the node says and decides nothing."""
from __future__ import annotations

from collections import namedtuple

from kcompile.ir import Graph, Node, Value, get_op
from kcompile.ir.ops.fused import computing_nodes, kernel_requantize, reads_overwritten


def outline(graph: Graph, groups) -> Graph:
    """`graph` with every group (passes.fusion.Group) replaced by a fused node at its root's place."""
    at_root = {g.nodes[-1]: g for g in groups}
    inner = {n for g in groups for n in g.nodes[:-1]}
    subst: dict = {}   # old Value -> the Value that replaces it in the outlined graph
    nodes, cloned = [], set()
    for node in graph.nodes:
        if node in inner:
            continue
        if node in at_root:
            new, outer_constants = _fused_node(at_root[node], subst, len(nodes))
            cloned |= outer_constants
        else:
            new = remapped(node, subst)
        nodes.append(new)
        subst.update({old: v for old, v in zip(node.outputs, new.outputs) if old is not v})
    outputs = [subst.get(v, v) for v in graph.outputs]
    used = set(outputs) | {v for n in nodes for v in n.inputs}
    nodes = [n for n in nodes if n not in cloned or any(v in used for v in n.outputs)]
    meta = {k: v for k, v in graph.meta.items() if k != "memory"}  # a plan of the old values means nothing now
    return Graph(graph.name, graph.inputs, graph.params, nodes, outputs, graph.param_values, graph.output_names, meta)


def remapped(node: Node, subst: dict) -> Node:
    """`node` reading subst's replacement of each input it has one for (itself when none)."""
    if not any(v in subst for v in node.inputs):
        return node
    return Node(node.op, [subst.get(v, v) for v in node.inputs], node.attrs, [v.type for v in node.outputs],
                node.name, [v.name for v in node.outputs])


def _fused_node(group, subst: dict, position: int):
    """The fused node of `group` (type-checked like any emit) and the outer constant nodes it copied."""
    body, outer = region(group, f"{group.kind}{position}")
    attrs = {"body": body, "kind": group.kind}
    if group.kind == "epilogue":
        attrs.update(kernel_epilogue(body))
    root = group.nodes[-1]
    opdef, where = get_op("fused"), f"fuse: group at {root.where()}"
    attrs = opdef.normalize_attrs(attrs, where)
    out_types = opdef.infer_types([v.type for v in outer], attrs, where)
    node = Node("fused", [subst.get(v, v) for v in outer], attrs, out_types, root.name, [root.outputs[0].name])
    return node, _copied_constants(group, outer)


def _copied_constants(group, outer) -> set:
    reads = {v for n in group.nodes for v in n.inputs}
    return {v.producer for v in reads - set(outer) if v.producer is not None and v.producer.op == "constant"}


def region(group, name: str):
    """(the closed region graph of `group`, the outer Values its inputs stand for, in order).

    One-element constants read only by elementwise members are copied in (immediates in the loop);
    every other value the group reads from outside becomes a region input."""
    others = [n for n in group.nodes if not get_op(n.op).has("elementwise")]
    produced = {v for n in group.nodes for v in n.outputs}
    reads = [v for n in group.nodes for v in n.inputs if v not in produced]
    copied = {v for v in reads if _immediate(v) and not any(v in n.inputs for n in others)}
    if copied == set(reads):  # a fused node reads at least one input: keep its constants outside
        copied = set()
    mapping, inputs, outer, nodes = {}, [], [], []

    def inside(v: Value) -> Value:
        if v not in mapping:
            if v in copied:
                copy = Node("constant", (), v.producer.attrs, [v.type])
                nodes.append(copy)
                mapping[v] = copy.outputs[0]
            else:
                inputs.append(Value(v.type, f"x{len(inputs)}"))
                outer.append(v)
                mapping[v] = inputs[-1]
        return mapping[v]

    for node in group.nodes:
        copy = Node(node.op, [inside(v) for v in node.inputs], node.attrs, [v.type for v in node.outputs], node.name)
        nodes.append(copy)
        mapping.update(zip(node.outputs, copy.outputs))
    return Graph(name, inputs, (), nodes, [mapping[group.nodes[-1].outputs[0]]], output_names=["y"]), outer


def _immediate(v: Value) -> bool:
    return v.producer is not None and v.producer.op == "constant" and v.type.numel() == 1


_Nodes = namedtuple("_Nodes", "nodes")   # a group as region() reads it


def kernel_epilogue_fits(graph: Graph, nodes) -> bool:
    """Whether the anchor's kernel can apply every node after it (the group then changes dtype)."""
    body, _ = region(_Nodes(tuple(nodes)), "probe")
    return kernel_epilogue(body).get("in_kernel", 0) == len(nodes) - 1


def kernel_epilogue(body: Graph) -> dict:
    """bias / activation / in_kernel: the leading bias add and/or relu the anchor's kernel applies
    in registers (float outputs; an integer anchor: a bias add and a last requantize); the other
    epilogue nodes run in place after the kernel."""
    anchor, *members = computing_nodes(body)
    out = anchor.outputs[0]
    if not out.type.dtype.is_float:
        return _integer_epilogue(body, anchor, members)
    bias, act, cur, used = -1, "linear", out, 0
    for n in members:
        if n.op == "add" and bias < 0 and act == "linear" and cur in n.inputs:
            other = n.inputs[1] if n.inputs[0] is cur else n.inputs[0]
            if other is cur or other not in body.inputs or _last_axis_vector(other) != out.type.shape[-1]:
                break
            bias = body.inputs.index(other)
        elif n.op == "relu" and act == "linear" and n.inputs[0] is cur:
            act = "relu"
        else:
            break
        cur, used = n.outputs[0], used + 1
    while used and reads_overwritten(anchor, members, used):
        used -= 1
        bias, act = (bias, "linear") if members[used].op == "relu" else (-1, act)
    return {"bias": bias, "activation": act, "in_kernel": used} if used else {}


def _integer_epilogue(body: Graph, anchor: Node, members) -> dict:
    """[add of an i32 bias vector,] requantize along the last axis: all in the int8 GEMM's kernel
    (an anchor over 8-bit operands), else none."""
    out = anchor.outputs[0]
    if anchor.inputs[0].type.dtype.name not in ("i8", "u8") or out.type.dtype.name != "i32":
        return {}
    bias, cur = -1, out
    if members and members[0].op == "add":
        add = members[0]
        other = add.inputs[1] if add.inputs[0] is cur else add.inputs[0]
        if other is cur or other not in body.inputs or _last_axis_vector(other) != out.type.shape[-1]:
            return {}
        bias, cur, members = body.inputs.index(other), add.outputs[0], members[1:]
    if len(members) != 1 or not kernel_requantize(members[0]) or members[0].inputs[0] is not cur:
        return {}
    return {"bias": bias, "activation": "requantize", "in_kernel": 1 + (bias >= 0)}


def _last_axis_vector(v: Value):
    """The length of v when it broadcasts only along the last axis ([C] or [1,...,1,C]), else None."""
    s = v.type.shape
    return s[-1] if s and all(d == 1 for d in s[:-1]) else None
