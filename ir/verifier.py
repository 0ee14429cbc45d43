"""The verifier: every IR invariant, with a message that says what is wrong and where."""
from __future__ import annotations

from .errors import IRError, VerificationError
from .graph import Graph, Value
from .registry import OPS, attrs_equal
from .types import TensorType


def verify(graph: Graph, _outer: frozenset = frozenset(), _where: str = "") -> Graph:
    """Raise VerificationError naming the first broken invariant; return the graph if sound."""
    defined: set = set()
    where_g = f"{_where}region @{graph.name}" if _where else f"graph @{graph.name}"
    _check_leaves(graph, defined, where_g)
    for i, node in enumerate(graph.nodes):
        where = f"{where_g}, node #{i} {node.where()}"
        opdef = OPS.get(node.op)
        if opdef is None:
            raise VerificationError(f"{where}: unknown op '{node.op}'")
        for j, v in enumerate(node.inputs):
            if not isinstance(v, Value):
                raise VerificationError(f"{where}: input {j} is not a Value")
            if v not in defined:
                what = ("is used before its definition" if _defined_later(graph, i, v)
                        else _undefined(v, _outer, "is not defined in this graph"))
                raise VerificationError(f"{where}: input {j} ({_name(v)}: {v.type}) {what}")
        for key, region in node.attrs.items():
            if isinstance(region, Graph):
                verify_region(region, f"{where}, attribute '{key}'", _outer | defined)
        try:
            attrs = opdef.normalize_attrs(node.attrs, where)
            expected = opdef.infer_types([v.type for v in node.inputs], attrs, where)
        except IRError as e:
            raise VerificationError(str(e)) from None
        if not attrs_equal(attrs, node.attrs):
            raise VerificationError(f"{where}: attributes {node.attrs} are not normalized (expected {attrs})")
        if len(expected) != len(node.outputs):
            raise VerificationError(f"{where}: has {len(node.outputs)} outputs, op defines {len(expected)}")
        for j, (v, t) in enumerate(zip(node.outputs, expected)):
            if v.type != t:
                raise VerificationError(f"{where}: output {j} has type {v.type}, inference gives {t}")
            if v.producer is not node or v.index != j:
                raise VerificationError(f"{where}: output {j} does not point back to its producer")
            if v in defined:
                raise VerificationError(f"{where}: output {j} ({_name(v)}) is defined twice (SSA)")
            defined.add(v)
    if not graph.outputs:
        raise VerificationError(f"{where_g}: has no outputs")
    for j, v in enumerate(graph.outputs):
        if v not in defined:
            what = _undefined(v, _outer, "is not defined in the graph")
            raise VerificationError(f"{where_g}: output {j} ({_name(v)}: {v.type}) {what}")
    if len(graph.output_names) != len(graph.outputs) or len(set(graph.output_names)) != len(graph.outputs):
        raise VerificationError(f"{where_g}: output names {list(graph.output_names)} must be unique, one per output")
    return graph


def verify_region(region: Graph, where: str, outer: frozenset = frozenset()) -> Graph:
    """Check a region (a graph-valued attribute): a closed graph, no parameters, sound inside.

    `outer` holds the values of the enclosing graphs, so a use of one is reported as a free value.
    """
    if region.params:
        raise VerificationError(f"{where}: region @{region.name} has parameters {region.param_names}; regions are "
                                f"closed (pass weights in as region inputs)")
    return verify(region, frozenset(outer), f"{where}: ")


def _undefined(v: Value, outer: frozenset, otherwise: str) -> str:
    if v in outer:
        return "is a free value from outside the region (regions are closed: pass it in as a region input)"
    return otherwise


def _check_leaves(graph: Graph, defined: set, where: str):
    names = set()
    for v in graph.inputs:
        if not isinstance(v.type, TensorType):
            raise VerificationError(f"{where}: input {_name(v)} has no tensor type")
        if not v.name or v.name in names:
            raise VerificationError(f"{where}: input names must be unique and non-empty, got {v.name!r}")
        if v.producer is not None or v.is_param:
            raise VerificationError(f"{where}: input {_name(v)} must not have a producer")
        names.add(v.name)
        defined.add(v)
    pnames = set()
    for p in graph.params:
        if not p.is_param or p.param_name in pnames:
            raise VerificationError(f"{where}: parameter names must be unique, got {p.param_name!r}")
        if p.type.has_batch:
            raise VerificationError(f"{where}: parameter '{p.param_name}' must have a static shape, got {p.type}")
        value = graph.param_values.get(p.param_name)
        if value is not None and (tuple(value.shape) != p.type.shape or value.dtype != p.type.dtype.np):
            raise VerificationError(f"{where}: parameter '{p.param_name}' has type {p.type} but its value is "
                                    f"{value.dtype}{list(value.shape)}")
        pnames.add(p.param_name)
        defined.add(p)
    extra = set(graph.param_values) - pnames
    if extra:
        raise VerificationError(f"{where}: values given for unknown parameters {sorted(extra)}")


def _defined_later(graph: Graph, index: int, v: Value) -> bool:
    return any(v in n.outputs for n in graph.nodes[index:])


def _name(v: Value) -> str:
    return f"%{v.name}" if v.name else "value"
