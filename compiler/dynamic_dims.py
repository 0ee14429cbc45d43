"""Symbolic non-batch dimensions (a dynamic sequence length T) in native code.

An entry point whose inputs carry such a symbol takes `const int64_t *input_shapes` (each input's
dims, in input order, concatenated) after its usual arguments. bind_symbols reads each symbol from
the first place an input declares it and checks every input dim against the batch, the static
shape and the other places of the same symbol: a caller that lies about a shape gets
STATUS_BAD_SHAPE before any kernel runs, never an out-of-bounds access. Kernels then take those
sizes as run-time extents (Buffer.dims); an op whose lowering still needs static sizes on such an
axis is refused by name (check_run_time_extents), before any code is emitted for it.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import Graph

from .loops import I8, I32, I64, i64
from .lower import RUN_TIME_EXTENTS, load_all
from .lower.context import STATUS_BAD_SHAPE

I8P = I8.as_pointer()
I64P = I64.as_pointer()
_BASE = [I8P.as_pointer(), I8P.as_pointer(), I8P, I8P, I64, I32, I64P]
DYNAMIC_ENTRY_TYPE = ir.FunctionType(I32, _BASE)
DYNAMIC_POINTERS_ENTRY_TYPE = ir.FunctionType(I32, [_BASE[0], _BASE[1], I8P.as_pointer(), *_BASE[3:]])
DYNAMIC_SIZE_TYPE = ir.FunctionType(I64, [I64, I64P])


class DynamicDimError(NotImplementedError):
    """A symbolic non-batch dimension reaches code that needs static sizes (the front end then
    compiles once per length instead)."""


def entry_symbols(graph: Graph) -> dict:
    """Symbol -> [[input index, axis], ...] for every non-leading symbolic dim of the inputs, in order."""
    found: dict = {}
    for k, v in enumerate(graph.inputs):
        for axis, d in enumerate(v.type.shape):
            if axis and isinstance(d, str):
                found.setdefault(d, []).append([k, axis])
    return found


def bind_symbols(b: ir.IRBuilder, graph: Graph, batch, shapes, status) -> dict:
    """Symbol -> i64 size read from input_shapes, after checking every input dim.

    status: the entry's status slot (a bad shape stores STATUS_BAD_SHAPE and returns it), or None
    in the workspace-size function (a bad shape returns -1)."""
    sizes, ok, pos = {}, ir.Constant(ir.IntType(1), 1), 0
    for v in graph.inputs:
        for axis, d in enumerate(v.type.shape):
            got = b.load(b.gep(shapes, [i64(pos)]), name=f"shape.{v.name}.{axis}")
            pos += 1
            if axis == 0 and isinstance(d, str):
                want = batch
            elif isinstance(d, str):
                want = sizes.setdefault(d, got)
            else:
                want = i64(d)
            ok = b.and_(ok, b.icmp_signed("==", got, want))
    for size in sizes.values():   # an empty sequence is refused (as by the reference interpreter's scan)
        ok = b.and_(ok, b.icmp_signed(">", size, i64(0)))
    with b.if_then(b.not_(ok), likely=False):
        if status is None:
            b.ret(i64(-1))
        else:
            b.store(ir.Constant(I32, STATUS_BAD_SHAPE), status)
            b.ret(ir.Constant(I32, STATUS_BAD_SHAPE))
    return sizes


def workspace_base(b: ir.IRBuilder, plan, region, sizes: dict):
    """i64 byte offset where a memory-plan region starts ("end": the whole workspace size)."""
    base = b.add(i64(plan.static_bytes), b.mul(i64(plan.batched_bytes_per_row), sizes["N"]))
    for term, coeff in plan.terms:
        if term == region:
            return base
        value = i64(1)
        for d in term:
            value = b.mul(value, sizes[d])
        base = b.add(base, b.mul(i64(coeff), value))
    if region != "end":
        raise KeyError(f"no workspace region {region!r} in the memory plan")
    return base


def _symbols_of(types) -> list:
    return sorted({d for t in types for axis, d in enumerate(t.shape) if axis and isinstance(d, str)})


def check_run_time_extents(graph: Graph, node) -> None:
    """Refuse, by name, a node whose tensors have a symbolic non-batch dim that its lowering (or, for
    a fused node, one of its region's nodes) cannot take at run time; scan bodies must be free of them."""
    symbols = _symbols_of(v.type for v in (*node.inputs, *node.outputs))
    if not symbols:
        return
    load_all()
    nodes = node.attrs["body"].nodes if node.op == "fused" else [node]
    ops = [n.op for n in nodes if _symbols_of(v.type for v in (*n.inputs, *n.outputs))]
    bad = sorted({op for op in ops if op not in RUN_TIME_EXTENTS})
    if node.op == "scan":
        inner = _symbols_of(v.type for v in node.attrs["body"].inputs)
        bad += [f"scan body inputs sized by {', '.join(inner)}"] if inner else []
    if bad:
        raise DynamicDimError(
            f"graph @{graph.name}, {node.where()}: the symbolic dimension(s) {', '.join(symbols)} (a dynamic "
            f"sequence length) reach {', '.join(repr(o) for o in bad)}, whose native code needs static sizes there; "
            "give the length (Input(shape=(steps, features))), run the reference backend, or export to ONNX")
