"""Whole graphs -> one LLVM module with one exported C function per entry point.

    int32_t <name>_<entry>(void **inputs, void **outputs, void *params, void *workspace,
                           int64_t batch, int32_t nthreads);
    int64_t <name>_<entry>_workspace_size(int64_t batch);

inputs/outputs: one pointer per graph input/output (row-major, C-contiguous, the graph's dtype);
params: the parameter block (layout from param_layout, shared by all entries); workspace: at
least workspace_size(batch) bytes, 64-byte aligned. Returns 0, or a STATUS_* code. Outputs listed
in graph.meta["param_updates"] ({output name: parameter name}) are written into the parameter
block (in place, after everything else ran) instead of to an output pointer.

Each entry point also exists as <name>_<entry>_p, the same function with `void **params` (one
pointer per parameter, in layout order) instead of the block: the in-process JIT passes the
caller's arrays without packing them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from llvmlite import ir

from kcompile.ir import Graph, Value
from kcompile.passes.fusion import schedule
from kcompile.passes.memory import SCRATCH_BATCHED, SCRATCH_STATIC, VIEW_OPS

from .loops import I8, I32, I64, copy_bytes, flush_denormals, i64, restore_denormals
from .lower import get_lowering
from .lower.constants import constant_pointer
from .lower.context import STATUS_MESSAGES, Buffer, LowerCtx, storage_type
from .lower.elementwise import emit_fused

I8P = I8.as_pointer()
ENTRY_TYPE = ir.FunctionType(I32, [I8P.as_pointer(), I8P.as_pointer(), I8P, I8P, I64, I32])
POINTERS_ENTRY_TYPE = ir.FunctionType(I32, [I8P.as_pointer(), I8P.as_pointer(), I8P.as_pointer(), I8P, I64, I32])
SIZE_TYPE = ir.FunctionType(I64, [I64])
# A region (scan body) compiled as an internal function: the entry convention, except that the
# params slot (regions have none) carries the base of the region's batched workspace.
REGION_TYPE = ir.FunctionType(I32, [I8P.as_pointer(), I8P.as_pointer(), I8P, I8P, I64, I32])
PARAM_ALIGN = 64


@dataclass(frozen=True)
class ParamSlot:
    name: str
    offset: int
    nbytes: int
    shape: tuple
    dtype: object


def param_layout(graphs) -> list:
    """One parameter block for all entry points: every parameter by name, 64-byte aligned."""
    slots, seen, offset = [], {}, 0
    for g in graphs:
        for p in g.params:
            t = p.type
            if p.param_name in seen:
                if seen[p.param_name] != t:
                    raise ValueError(f"parameter '{p.param_name}' is {seen[p.param_name]} in one entry point "
                                     f"and {t} in another")
                continue
            seen[p.param_name] = t
            nbytes = t.numel() * t.dtype.itemsize
            slots.append(ParamSlot(p.param_name, offset, nbytes, t.shape, t.dtype))
            offset += -(-nbytes // PARAM_ALIGN) * PARAM_ALIGN
    return slots


@dataclass
class NativeModule:
    """Generated code and everything a loader needs to call it."""

    name: str
    ir_text: str
    entries: dict                 # entry kind -> Graph
    params: list                  # ParamSlot
    workspace: dict               # entry kind -> (bytes per batch row A, static bytes B)
    libraries: set = field(default_factory=set)
    status_messages: dict = field(default_factory=lambda: dict(STATUS_MESSAGES))

    def symbol(self, kind: str) -> str:
        return f"{self.name}_{kind}"

    @property
    def abi_symbol(self) -> str:
        return f"{self.name}_abi"

    def interface(self) -> dict:
        """What a caller must know to call the code safely: entry points, tensors, parameter layout.

        The code embeds this (as canonical JSON at abi_symbol), so a loader can check that a
        manifest describes the code it ships with before trusting its shapes and sizes."""
        return {
            "entry_points": {kind: _entry_interface(self, kind, g) for kind, g in self.entries.items()},
            "params": [{"name": s.name, "offset": s.offset, "nbytes": s.nbytes, "shape": list(s.shape),
                        "dtype": s.dtype.name} for s in self.params],
            "param_block_bytes": max((s.offset + s.nbytes for s in self.params), default=0),
        }


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _tensor(name: str, v: Value) -> dict:
    return {"name": name, "shape": list(v.type.shape), "dtype": v.type.dtype.name}


def _entry_interface(native: NativeModule, kind: str, graph: Graph) -> dict:
    per_row, static = native.workspace[kind]
    updates = dict(graph.meta.get("param_updates", {}))
    return {
        "symbol": native.symbol(kind),
        "workspace_symbol": f"{native.symbol(kind)}_workspace_size",
        "workspace": {"per_batch": per_row, "static": static},
        "inputs": [_tensor(v.name, v) for v in graph.inputs],
        "outputs": [_tensor(n, v) for n, v in zip(graph.output_names, graph.outputs) if n not in updates],
        "param_updates": updates,
    }


def _string_constant(module: ir.Module, name: str, text: str) -> None:
    data = bytearray(text.encode()) + b"\0"
    g = ir.GlobalVariable(module, ir.ArrayType(I8, len(data)), name=name)
    g.initializer = ir.Constant(ir.ArrayType(I8, len(data)), data)
    g.global_constant = True


def generate(entries: dict, name: str, target) -> NativeModule:
    """entries: kind ('forward', 'train_step', ...) -> Graph planned by fuse and plan-memory."""
    layout = param_layout(entries.values())
    module = ir.Module(name=name)
    module.triple = target.triple
    libraries, workspace = set(), {}
    for kind, graph in entries.items():
        plan = graph.meta.get("memory")
        if plan is None or plan.nodes is not graph.nodes:
            raise ValueError(f"graph @{graph.name} has no memory plan for its current nodes: run the "
                             "plan-memory pass last")
        _EntryBuilder(module, graph, layout, target, libraries).build(f"{name}_{kind}")
        _size_function(module, f"{name}_{kind}_workspace_size", plan)
        workspace[kind] = (plan.batched_bytes_per_row, plan.static_bytes)
    native = NativeModule(name, "", dict(entries), layout, workspace, libraries)
    _string_constant(module, native.abi_symbol, canonical_json(native.interface()))
    native.ir_text = str(module)
    return native


def _size_function(module, symbol, plan):
    fn = ir.Function(module, SIZE_TYPE, symbol)
    b = ir.IRBuilder(fn.append_basic_block())
    b.ret(b.add(b.mul(fn.args[0], i64(plan.batched_bytes_per_row)), i64(plan.static_bytes)))


class Epilogue:
    """Elementwise nodes fused after a matmul/conv (the anchor), applied to the anchor's output.

    out: the Buffer both write; anchor_value: the anchor's output Value (read in place);
    members: the fused nodes (topological order); leaves: other Values they read -> Buffers.
    """

    def __init__(self, target, out: Buffer, anchor_value: Value, members, leaves: dict):
        self.target, self.out, self.anchor_value = target, out, anchor_value
        self.members, self.leaves = list(members), dict(leaves)
        self.claimable = len(self.members)  # how many leading members a take_epilogue() claims

    def emit_in_place(self, builder, nthreads=None, claimed: int = 0) -> None:
        """A loop over out for the members after the first `claimed` (the kernel applied those)."""
        rest = self.members[claimed:]
        if not rest:
            return
        current = self.members[claimed - 1].outputs[0] if claimed else self.anchor_value
        leaves = {**self.leaves, current: self.out.view(current, self.out.dims)}
        emit_fused(builder, self.target, self.out, rest, leaves, nthreads)

    def bias_activation(self):
        """(bias Buffer or None, 'linear' | 'relu') for the leading bias add and/or relu, else None.

        A kernel that applies them calls take_epilogue(); codegen then runs the remaining members
        (e.g. a tanh after the bias add) in place, after the kernel."""
        bias, act, cur, used = None, "linear", self.anchor_value, 0
        for n in self.members:
            if n.op == "add" and bias is None and act == "linear" and cur in n.inputs:
                other = n.inputs[1] if n.inputs[0] is cur else n.inputs[0]
                if other is cur or other not in self.leaves or _last_axis_vector(other) != self.out.shape[-1]:
                    break
                bias = self.leaves[other]
            elif n.op == "relu" and act == "linear" and n.inputs[0] is cur:
                act = "relu"
            else:
                break
            cur, used = n.outputs[0], used + 1
        while used and not self._rest_reads_only(used):
            used -= 1
            bias, act = (bias, "linear") if self.members[used].op == "relu" else (None, act)
        if not used:
            return None
        self.claimable = used
        return bias, act

    def _rest_reads_only(self, used: int) -> bool:
        """The members after the first `used` read no value the kernel will have overwritten."""
        gone = {self.anchor_value} | {n.outputs[0] for n in self.members[:used - 1]}
        return not any(v in gone for n in self.members[used:] for v in n.inputs)


def _immediate(v: Value) -> bool:
    """A one-element constant: fused loops use it as an immediate instead of loading it."""
    return v.producer is not None and v.producer.op == "constant" and v.type.numel() == 1


def _last_axis_vector(v: Value):
    """The length of v when it broadcasts only along the last axis ([C] or [1,...,1,C]), else None."""
    s = v.type.shape
    return s[-1] if s and all(d == 1 for d in s[:-1]) else None


class _EntryBuilder:
    FN_TYPE = POINTERS_ENTRY_TYPE
    ARG_NAMES = ("inputs", "outputs", "params", "workspace", "batch", "nthreads")

    def __init__(self, module, graph: Graph, layout, target, libraries: set):
        self.module, self.graph, self.target, self.libraries = module, graph, target, libraries
        self.layout = list(layout)
        self.slot_index = {s.name: k for k, s in enumerate(layout)}
        self.plan = graph.meta["memory"]
        self.buffers: dict = {}
        self.node_index = {id(n): i for i, n in enumerate(graph.nodes)}

    def build(self, symbol: str) -> None:
        """The body as `<symbol>_p` (parameter pointers), and `<symbol>` (parameter block) calling it."""
        self._build_body(f"{symbol}_p")
        self._build_block_wrapper(symbol, self.fn)

    def _build_block_wrapper(self, symbol: str, body):
        fn = ir.Function(self.module, ENTRY_TYPE, symbol)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        n = max(1, len(self.layout))
        table = b.alloca(ir.ArrayType(I8P, n), name="param.ptrs")
        for k, slot in enumerate(self.layout):
            b.store(b.gep(fn.args[2], [i64(slot.offset)]), b.gep(table, [ir.Constant(I32, 0), ir.Constant(I32, k)]))
        ptrs = b.gep(table, [ir.Constant(I32, 0), ir.Constant(I32, 0)])
        b.ret(b.call(body, [fn.args[0], fn.args[1], ptrs, *fn.args[3:]]))

    def _param_ptr(self, name: str):
        return self.b.load(self.b.gep(self.params, [i64(self.slot_index[name])]))

    def _build_body(self, symbol: str) -> None:
        fn = ir.Function(self.module, self.FN_TYPE, symbol)
        for arg, n in zip(fn.args, self.ARG_NAMES):
            arg.name = n
        self.fn = fn
        self.inputs, self.outputs, self.params, self.workspace, self.batch, self.nthreads = fn.args
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.status = b.alloca(I32, name="status")
        b.store(ir.Constant(I32, 0), self.status)
        saved = flush_denormals(b) if self.target.is_x86 else None
        self._bind_leaves()
        for step in schedule(self.graph):
            self._lower_step(step)
        self._finish_outputs()
        b = self.b  # (a lowering may have handed back another builder)
        if saved is not None:
            restore_denormals(b, saved)
        b.ret(b.load(self.status))

    # -- buffers -------------------------------------------------------------------------
    def dims(self, v: Value) -> list:
        return [self.batch if isinstance(d, str) else i64(d) for d in v.type.shape]

    def _typed(self, i8ptr, v: Value):
        return self.b.bitcast(i8ptr, storage_type(v.type.dtype).as_pointer())

    def _bind_leaves(self):
        b, g = self.b, self.graph
        for k, v in enumerate(g.inputs):
            ptr = b.load(b.gep(self.inputs, [i64(k)]), name=f"in.{v.name}")
            self.buffers[v] = Buffer(v, self._typed(ptr, v), self.dims(v))
        for p in g.params:
            ptr = self._param_ptr(p.param_name)
            self.buffers[p] = Buffer(p, self._typed(ptr, p), self.dims(p))
        self.out_home = {}
        for k, v in self.caller_outputs():
            if v.producer is not None and v not in self.out_home:
                self.out_home[v] = k

    def caller_outputs(self):
        """(slot in the outputs array, Value) for outputs that are not parameter updates."""
        updates = self.graph.meta.get("param_updates", {})
        kept = [v for v, n in zip(self.graph.outputs, self.graph.output_names) if n not in updates]
        return list(enumerate(kept))

    def buffer(self, v: Value) -> Buffer:
        """The buffer of a node output (made on first request: caller output or workspace)."""
        if v in self.buffers:
            return self.buffers[v]
        b = self.b
        if v in self.out_home:
            ptr = b.load(b.gep(self.outputs, [i64(self.out_home[v])]))
        else:
            ptr = self._workspace_ptr(*self.plan.offsets[(self.node_index[id(v.producer)], v.index)])
        buf = Buffer(v, self._typed(ptr, v), self.dims(v))
        self.buffers[v] = buf
        return buf

    def _workspace_ptr(self, region: str, off: int):
        b = self.b
        if region == "static":
            return b.gep(self.workspace, [i64(off)])
        return b.gep(self.workspace, [b.add(i64(self.plan.static_bytes), b.mul(i64(off), self.batch))])

    def _scratch(self, node):
        """(static, batched) i8 pointers of the scratch the plan reserved for node, or None."""
        i = self.node_index[id(node)]
        parts = [self.plan.offsets.get((i, key)) for key in (SCRATCH_STATIC, SCRATCH_BATCHED)]
        if parts == [None, None]:
            return None
        return tuple(self._workspace_ptr(*p) if p else ir.Constant(I8P, None) for p in parts)

    # -- steps ---------------------------------------------------------------------------
    def _lower_step(self, step):
        nodes = self.graph.nodes
        if step.group is None:
            self._lower_node(nodes[step.root])
            return
        g = step.group
        members = [nodes[i] for i in g.members]
        if g.consumer is not None:  # a prologue: the reduction reads the group's result on the fly
            x = nodes[g.root].outputs[0]
            leaves = self._leaves(members)
            self.buffers[x] = Buffer(x, None, self.dims(x), prologue=(x, leaves))
            self._lower_node(nodes[g.consumer])
            return
        out = self.buffer(nodes[g.root].outputs[0])
        if g.anchor is None:
            leaves = self._leaves(members)
            emit_fused(self.b, self.target, out, members, leaves, self.nthreads)
            return
        anchor = nodes[g.anchor]
        av = anchor.outputs[0]
        self.buffers[av] = out.view(av, out.dims)
        leaves = self._leaves(members, skip=av)
        epilogue = Epilogue(self.target, out, av, members, leaves)
        ctx = self._lower_node(anchor, epilogue)
        epilogue.emit_in_place(self.b, self.nthreads, epilogue.claimable if ctx.epilogue_taken else 0)

    def _leaves(self, members, skip=None) -> dict:
        """Buffers of the values a fused group reads from outside (one-element constants inline)."""
        produced = {v for n in members for v in n.outputs}
        return {v: self._operand(v) for n in members for v in n.inputs
                if v not in produced and v is not skip and not _immediate(v)}

    def _operand(self, v: Value) -> Buffer:
        if v in self.buffers:
            return self.buffers[v]
        raise AssertionError(f"value {v} is used before codegen produced it")

    def _lower_node(self, node, epilogue=None):
        ins = [self._operand(v) for v in node.inputs]
        is_output = any(v in self.out_home for v in node.outputs)
        if node.op in VIEW_OPS and not is_output:
            self.buffers[node.outputs[0]] = ins[0].view(node.outputs[0], self.dims(node.outputs[0]))
            return None
        if node.op == "constant" and not is_output:
            v = node.outputs[0]
            ptr = constant_pointer(self.module, node.attrs["value"], v.type.dtype)
            self.buffers[v] = Buffer(v, ptr, self.dims(v))
            return None
        outs = [self.buffer(v) for v in node.outputs]
        ctx = LowerCtx(self.b, self.module, node, ins, outs, self.batch, self.nthreads, self.target, self.status,
                       epilogue, self.libraries, scratch=self._scratch(node))
        try:
            get_lowering(node.op)(ctx)
        except NotImplementedError as e:
            raise NotImplementedError(f"graph @{self.graph.name}, {node.where()}: {e}") from None
        self.b = ctx.builder
        return ctx

    def _finish_outputs(self):
        """Outputs that are inputs, parameters or repeated values are copied; updates go to params."""
        b, g = self.b, self.graph
        for k, v in self.caller_outputs():
            if self.out_home.get(v) != k:
                self._copy_value(v, b.load(b.gep(self.outputs, [i64(k)])))
        updates = g.meta.get("param_updates", {})
        for v, oname in zip(g.outputs, g.output_names):
            if oname in updates:
                self._copy_value(v, self._param_ptr(updates[oname]))

    def _copy_value(self, v: Value, dst):
        b = self.b
        src = self._operand(v) if v in self.buffers else self.buffer(v)
        nbytes = b.mul(src.numel(b), i64(v.type.dtype.itemsize))
        copy_bytes(b, dst, b.bitcast(src.ptr, I8P), nbytes)


class _RegionBuilder(_EntryBuilder):
    """A planned region as an internal function of REGION_TYPE; its batched workspace has its own base."""

    FN_TYPE = REGION_TYPE
    ARG_NAMES = ("inputs", "outputs", "batched_workspace", "workspace", "batch", "nthreads")

    def _workspace_ptr(self, region: str, off: int):
        if region == "static":
            return self.b.gep(self.workspace, [i64(off)])
        return self.b.gep(self.params, [self.b.mul(i64(off), self.batch)])  # params holds the batched base


def region_function(module, planned: Graph, target, libraries: set, symbol: str) -> ir.Function:
    """Compile a region planned by fuse and plan-memory (passes.regions.plan_region) once, as an
    internal function: (inputs, outputs, batched workspace, static workspace, batch, nthreads) -> status."""
    builder = _RegionBuilder(module, planned, [], target, libraries)
    builder._build_body(symbol)
    builder.fn.linkage = "internal"
    return builder.fn
