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

A graph whose inputs have symbolic non-batch dimensions (a dynamic sequence length T) takes one more
argument, `const int64_t *input_shapes` (every input's dims, in input order, concatenated), and its
workspace function is `int64_t <name>_<entry>_workspace_size(int64_t batch, const int64_t *input_shapes)`.
The code learns T from the shapes (dynamic_dims.py), checks them against the batch, the static dims
and each other (STATUS_BAD_SHAPE), and every kernel on a T-sized axis takes its extent at run time.

Entries without dynamic dims also exist packed, `int32_t <symbol>_packed(const int64_t *args)` with args = {inputs,
outputs, params, workspace, batch, nthreads}: one argument, so a call from Python through ctypes
converts one integer instead of six (about 1 us less per call; see ir/call_plan.py). A train step's
(an entry with param_updates) `<symbol>_p` also exists as `<symbol>_p_gathered`, which first copies a
batch's rows from whole arrays by an index vector (gather_entry.py: fit's shuffled batches).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from llvmlite import ir

from kcompile.ir import Graph, Value, get_op
from kcompile.passes.memory import SCRATCH_BATCHED, SCRATCH_STATIC
from kcompile.ir.ops.sparse import sparse_weights

from .batch_chunks import chunk_rows, chunked_entry
from .dynamic_dims import (DYNAMIC_ENTRY_TYPE, DYNAMIC_POINTERS_ENTRY_TYPE, DYNAMIC_SIZE_TYPE, DynamicDimError,
                           bind_symbols, check_run_time_extents, entry_symbols, workspace_base)
from .gather_entry import gathered_wrapper
from .loops import I8, I32, I64, copy_bytes, flush_denormals, i64, restore_denormals
from .lower import get_lowering
from .lower.constants import constant_pointer
from .lower.context import STATUS_MESSAGES, Buffer, LowerCtx, storage_type

I8P = I8.as_pointer()
ENTRY_TYPE = ir.FunctionType(I32, [I8P.as_pointer(), I8P.as_pointer(), I8P, I8P, I64, I32])
POINTERS_ENTRY_TYPE = ir.FunctionType(I32, [I8P.as_pointer(), I8P.as_pointer(), I8P.as_pointer(), I8P, I64, I32])
SIZE_TYPE = ir.FunctionType(I64, [I64])
# A region (scan body) compiled as an internal function: the entry convention, except that the
# params slot (regions have none) carries the base of the region's batched workspace.
REGION_TYPE = ir.FunctionType(I32, [I8P.as_pointer(), I8P.as_pointer(), I8P, I8P, I64, I32])
PARAM_ALIGN = 64
PACKED_TYPE = ir.FunctionType(I32, [I64.as_pointer()])
PACKED_SUFFIX = "_packed"


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
    ir_source: str | None         # the LLVM IR text, or None until ir_text prints `module`
    entries: dict                 # entry kind -> Graph
    params: list                  # ParamSlot
    workspace: dict               # entry kind -> (bytes per batch row A, static bytes B[, terms: [[symbols], bytes]])
    libraries: set = field(default_factory=set)
    status_messages: dict = field(default_factory=lambda: dict(STATUS_MESSAGES))
    sparse_weights: list = field(default_factory=list)  # ir.ops.sparse.sparse_weights of the entries
    module: object = field(default=None, repr=False, compare=False)   # the llvmlite module, until printed

    @property
    def ir_text(self) -> str:
        """The module's LLVM IR text, printed on first use: a tiered compile's tier 0 has it printed in a
        forked helper and its tier 1 in the child (compiler/tier_up.py), never in this process."""
        if self.ir_source is None:
            self.ir_source, self.module = str(self.module), None
        return self.ir_source

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
        } | ({"sparse_weights": self.sparse_weights} if self.sparse_weights else {})


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _tensor(name: str, v: Value) -> dict:
    return {"name": name, "shape": list(v.type.shape), "dtype": v.type.dtype.name}


def _entry_interface(native: NativeModule, kind: str, graph: Graph) -> dict:
    per_row, static, *terms = native.workspace[kind]
    updates = dict(graph.meta.get("param_updates", {}))
    symbols = entry_symbols(graph)
    return {
        "symbol": native.symbol(kind),
        "workspace_symbol": f"{native.symbol(kind)}_workspace_size",
        "workspace": {"per_batch": per_row, "static": static} | ({"terms": terms[0]} if terms else {}),
        "inputs": [_tensor(v.name, v) for v in graph.inputs],
        "outputs": [_tensor(n, v) for n, v in zip(graph.output_names, graph.outputs) if n not in updates],
        "param_updates": updates,
    } | ({"symbols": symbols} if symbols else {})


def _string_constant(module: ir.Module, name: str, text: str) -> None:
    data = bytearray(text.encode()) + b"\0"
    g = ir.GlobalVariable(module, ir.ArrayType(I8, len(data)), name=name)
    g.initializer = ir.Constant(ir.ArrayType(I8, len(data)), data)
    g.global_constant = True


def generate(entries: dict, name: str, target, kernels=None) -> NativeModule:
    """entries: kind ('forward', 'train_step', ...) -> Graph planned by fuse and plan-memory.

    kernels: a kernel_library.KernelSet, to take the shape-generic kernels out of the module (their
    bodies go to kernels.texts, or are not generated where their code is compiled already)."""
    layout = param_layout(entries.values())
    module = ir.Module(name=name)
    module.triple = target.triple
    if kernels is not None:
        kernels.attach(module)
    libraries, workspace = set(), {}
    for kind, graph in entries.items():
        if graph.meta.get("memory") is None:
            raise ValueError(f"graph @{graph.name} has no memory plan: run the plan-memory pass last")
        plan = graph.meta["memory"]
        _EntryBuilder(module, graph, layout, target, libraries).build(f"{name}_{kind}")
        _size_function(module, f"{name}_{kind}_workspace_size", graph, plan)
        workspace[kind] = (plan.batched_bytes_per_row, plan.static_bytes) + \
            (([[list(t), c] for t, c in plan.terms],) if entry_symbols(graph) else ())
    sparse = list({w["name"]: w for g in entries.values() for w in sparse_weights(g)}.values())
    native = NativeModule(name, None, dict(entries), layout, workspace, libraries, sparse_weights=sparse)
    _string_constant(module, native.abi_symbol, canonical_json(native.interface()))
    if kernels is not None:
        kernels.split(module)
        kernels.split_glue(module)
    native.module = module      # printed when ir_text is first asked for
    return native


def _size_function(module, symbol, graph, plan):
    """workspace_size(batch) -> B + A*N; with symbols, (batch, input_shapes) -> the whole polynomial."""
    if not entry_symbols(graph):
        fn = ir.Function(module, SIZE_TYPE, symbol)
        b = ir.IRBuilder(fn.append_basic_block())
        b.ret(b.add(b.mul(fn.args[0], i64(plan.batched_bytes_per_row)), i64(plan.static_bytes)))
        return
    fn = ir.Function(module, DYNAMIC_SIZE_TYPE, symbol)
    b = ir.IRBuilder(fn.append_basic_block())
    sizes = {**bind_symbols(b, graph, fn.args[0], fn.args[1], None), "N": fn.args[0]}
    b.ret(workspace_base(b, plan, "end", sizes))


def _packed_wrapper(module, entry: ir.Function) -> None:
    """`<entry>_packed(const int64_t args[6])`: the entry's six arguments read from one array."""
    fn = ir.Function(module, PACKED_TYPE, entry.name + PACKED_SUFFIX)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    slots = [b.load(b.gep(fn.args[0], [i64(k)])) for k in range(6)]
    args = [b.inttoptr(v, t) for v, t in zip(slots[:4], entry.function_type.args[:4])]
    b.ret(b.call(entry, args + [slots[4], b.trunc(slots[5], I32)]))


class _EntryBuilder:
    FN_TYPE = POINTERS_ENTRY_TYPE
    ARG_NAMES = ("inputs", "outputs", "params", "workspace", "batch", "nthreads", "input_shapes")

    def __init__(self, module, graph: Graph, layout, target, libraries: set):
        self.module, self.graph, self.target, self.libraries = module, graph, target, libraries
        self.layout = list(layout)
        self.slot_index = {s.name: k for k, s in enumerate(layout)}
        self.plan = graph.meta["memory"]
        self.buffers: dict = {}
        self.dynamic = bool(entry_symbols(graph))   # the entry takes input_shapes
        self.sizes: dict = {}                       # symbol -> i64 run-time size (not the batch)

    def build(self, symbol: str) -> None:
        """The body as `<symbol>_p` (parameter pointers), and `<symbol>` (parameter block) calling it."""
        rows = 0 if self.dynamic else chunk_rows(self.graph, self.plan.batched_bytes_per_row)
        self._build_body(f"{symbol}_p" + (".rows" if rows else ""))
        if rows:   # a large batch runs as a loop of smaller ones (batch_chunks.py)
            outputs = [v for _, v in self.caller_outputs()]
            self.fn = chunked_entry(self.module, f"{symbol}_p", self.fn, self.graph, outputs, rows,
                                    self.plan.batched_bytes_per_row, self.plan.static_bytes)
        self._build_block_wrapper(symbol, self.fn)
        if not self.dynamic:   # (a dynamic entry's seventh argument, input_shapes, has no slot in the block)
            _packed_wrapper(self.module, self.fn)
            _packed_wrapper(self.module, self.module.globals[symbol])
            if self.graph.meta.get("param_updates"):   # a train step: fit's shuffled batches (gather_entry.py)
                gathered_wrapper(self.module, self.fn)

    def _build_block_wrapper(self, symbol: str, body):
        fn = ir.Function(self.module, DYNAMIC_ENTRY_TYPE if self.dynamic else ENTRY_TYPE, symbol)
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
        fn = ir.Function(self.module, DYNAMIC_POINTERS_ENTRY_TYPE if self.dynamic else self.FN_TYPE, symbol)
        for arg, n in zip(fn.args, self.ARG_NAMES):
            arg.name = n
        self.fn = fn
        self.inputs, self.outputs, self.params, self.workspace, self.batch, self.nthreads = fn.args[:6]
        b = self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.status = b.alloca(I32, name="status")
        b.store(ir.Constant(I32, 0), self.status)
        if self.dynamic:   # learn T from the input shapes; shapes that disagree return STATUS_BAD_SHAPE
            self.sizes = bind_symbols(b, self.graph, self.batch, fn.args[6], self.status)
        saved = flush_denormals(b) if self.target.is_x86 else None
        self._bind_leaves()
        for node in self.graph.nodes:  # a fused node is one kernel (lower/fused.py)
            self._lower_node(node)
        self._finish_outputs()
        b = self.b  # (a lowering may have handed back another builder)
        if saved is not None:
            restore_denormals(b, saved)
        b.ret(b.load(self.status))

    # -- buffers -------------------------------------------------------------------------
    def dims(self, v: Value) -> list:
        return [self.size_of(d, i) for i, d in enumerate(v.type.shape)]

    def size_of(self, d, axis: int):
        """A dim as an i64: static, the batch (a leading symbol), or a symbol the inputs bound."""
        if not isinstance(d, str):
            return i64(d)
        if axis == 0:
            return self.batch
        if d not in self.sizes:
            raise DynamicDimError(f"graph @{self.graph.name}: the symbolic dimension {d} has no run-time size "
                                  "here (a region body, or no graph input binds it)")
        return self.sizes[d]

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
        self.param_buffers = {p.param_name: self.buffers[p] for p in g.params}
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
        elif v in self.plan.in_place:   # a parameter update written into the parameter (passes/update_in_place.py)
            ptr = self._param_ptr(self.plan.in_place[v])
        else:
            if v not in self.plan.offsets:
                raise ValueError(f"graph @{self.graph.name}: {v.producer.where()} has no place in the memory plan "
                                 "(a pass rewrote it after plan-memory): run the plan-memory pass last")
            ptr = self._workspace_ptr(*self.plan.offsets[v])
        buf = Buffer(v, self._typed(ptr, v), self.dims(v))
        self.buffers[v] = buf
        return buf

    def _workspace_ptr(self, region, off: int):
        b = self.b
        if region == "static":
            return b.gep(self.workspace, [i64(off)])
        if region == "batched":
            return b.gep(self.workspace, [b.add(i64(self.plan.static_bytes), b.mul(i64(off), self.batch))])
        base = workspace_base(b, self.plan, region, {**self.sizes, "N": self.batch})
        term = i64(1)
        for d in region:
            term = b.mul(term, self.size_of(d, 0 if d == "N" else 1))
        return b.gep(self.workspace, [b.add(base, b.mul(i64(off), term))])

    def _scratch(self, node):
        """(static, batched) i8 pointers of the scratch the plan reserved for node, or None."""
        parts = [self.plan.offsets.get((node, key)) for key in (SCRATCH_STATIC, SCRATCH_BATCHED)]
        if parts == [None, None]:
            return None
        return tuple(self._workspace_ptr(*p) if p else ir.Constant(I8P, None) for p in parts)

    # -- nodes ---------------------------------------------------------------------------
    def _operand(self, v: Value) -> Buffer:
        if v in self.buffers:
            return self.buffers[v]
        raise AssertionError(f"value {v} is used before codegen produced it")

    def _lower_node(self, node):
        ins = [self._operand(v) for v in node.inputs]
        is_output = any(v in self.out_home for v in node.outputs)
        if get_op(node.op).has("view") and not is_output:
            self.buffers[node.outputs[0]] = ins[0].view(node.outputs[0], self.dims(node.outputs[0]))
            return
        if node.op == "constant" and not is_output:
            v = node.outputs[0]
            ptr = constant_pointer(self.module, node.attrs["value"], v.type.dtype)
            self.buffers[v] = Buffer(v, ptr, self.dims(v))
            return
        check_run_time_extents(self.graph, node)   # a symbol reaching a lowering that needs static sizes
        outs = [self.buffer(v) for v in node.outputs]
        ctx = LowerCtx(self.b, self.module, node, ins, outs, self.batch, self.nthreads, self.target, self.status,
                       None, self.libraries, scratch=self._scratch(node), sizes=self.sizes,
                       params=getattr(self, "param_buffers", None))
        try:
            get_lowering(node.op)(ctx)
        except NotImplementedError as e:
            raise NotImplementedError(f"graph @{self.graph.name}, {node.where()}: {e}") from None
        self.b = ctx.builder

    def _finish_outputs(self):
        """Outputs that are inputs, parameters or repeated values are copied; updates go to params."""
        b, g = self.b, self.graph
        for k, v in self.caller_outputs():
            if self.out_home.get(v) != k:
                self._copy_value(v, b.load(b.gep(self.outputs, [i64(k)])))
        updates = g.meta.get("param_updates", {})
        for v, oname in zip(g.outputs, g.output_names):
            if oname in updates and self.plan.in_place.get(v) != updates[oname]:
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

    def _workspace_ptr(self, region, off: int):
        if region == "static":
            return self.b.gep(self.workspace, [i64(off)])
        if region == "batched":
            return self.b.gep(self.params, [self.b.mul(i64(off), self.batch)])  # params holds the batched base
        raise DynamicDimError(f"region @{self.graph.name}: a scan body with tensors sized by {'*'.join(region)} "
                              "(a symbolic dimension inside the loop body) cannot be compiled natively")


def region_function(module, planned: Graph, target, libraries: set, symbol: str) -> ir.Function:
    """Compile a region planned by fuse and plan-memory (passes.regions.plan_region) once, as an
    internal function: (inputs, outputs, batched workspace, static workspace, batch, nthreads) -> status."""
    builder = _RegionBuilder(module, planned, [], target, libraries)
    builder.dynamic = False   # a region's sizes come from its scan: only the batch
    builder._build_body(symbol)
    builder.fn.linkage = "internal"
    return builder.fn
