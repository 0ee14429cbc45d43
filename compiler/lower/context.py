"""What a lowering is handed: buffers (pointer + run-time dims) and the LowerCtx of one node."""
from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from kcompile.ir import DType, Node, Value, bool_

from ..loops import I1, I32, I64, STORAGE, i64 as c64


def storage_type(dt: DType) -> ir.Type:
    """LLVM element type in memory (bool is one byte, as in NumPy)."""
    return STORAGE[dt]


def compute_type(dt: DType) -> ir.Type:
    """LLVM element type in registers (bool is i1)."""
    return I1 if dt == bool_ else STORAGE[dt]


@dataclass
class Buffer:
    """A tensor in memory: typed element pointer, row-major, dims as run-time i64 values."""

    value: Value
    ptr: ir.Value | None
    dims: list
    prologue: object = None  # (Value, leaves: Value -> Buffer): not stored, computed where it is read

    @property
    def dtype(self) -> DType:
        return self.value.type.dtype

    @property
    def shape(self) -> tuple:
        """The static shape (the batch dimension is the symbol 'N')."""
        return self.value.type.shape

    @property
    def rank(self) -> int:
        return len(self.dims)

    def numel(self, builder: ir.IRBuilder):
        n = c64(1)
        for d in self.dims:
            n = builder.mul(n, d)
        return n

    def strides(self, builder: ir.IRBuilder) -> list:
        """Row-major strides in elements."""
        out, s = [], c64(1)
        for d in reversed(self.dims):
            out.append(s)
            s = builder.mul(s, d)
        return out[::-1]

    def at(self, builder: ir.IRBuilder, flat):
        return builder.gep(self.ptr, [flat])

    def view(self, value: Value, dims: list) -> "Buffer":
        """The same memory seen as another value (reshape, squeeze, ...)."""
        return Buffer(value, self.ptr, dims)


@dataclass
class LowerCtx:
    """Everything a lowering may use. One per lowered node; the builder is positioned for it.

    builder   llvmlite IRBuilder inside the entry function (or a helper being built)
    module    the llvmlite ir.Module of the whole graph
    node      the IR Node being lowered (op, attrs, input/output Values)
    ins/outs  Buffers for node.inputs / node.outputs; outs are never aliased with ins
    batch     i64 run-time batch size (dims already hold it where the type says "N")
    nthreads  i32 run-time thread count requested by the caller (>= 1)
    target    compiler.target.Target: features, vector lanes
    status    i32* slot of the entry point's return status (see fail())
    epilogue  the Epilogue a fused node hands its anchor (lower/fused.py), or None: a lowering
              that applies its in-kernel part (bias, activation) calls take_epilogue()
    scratch   (static, batched) i8 pointers to the scratch plan-memory reserved for this node
              (passes.memory.SCRATCH), or None
    sizes     symbol -> i64 run-time size of the graph's symbolic non-batch dims (a dynamic length
              T; compiler/dynamic_dims.py); Buffer.dims already hold them. size_of(dim, axis) maps one.
    params    every parameter's Buffer by name, or None
    """

    builder: ir.IRBuilder
    module: ir.Module
    node: Node
    ins: list
    outs: list
    batch: ir.Value
    nthreads: ir.Value
    target: object
    status: ir.Value
    epilogue: object = None
    libraries: set = field(default_factory=set)
    epilogue_taken: bool = False
    scratch: tuple | None = None
    sizes: dict = field(default_factory=dict)
    params: dict | None = None     # parameter name -> Buffer (e.g. a weight's packed copy, passes/int8_prepack.py)

    def size_of(self, d, axis: int):
        """A dim of a type as an i64: static, the batch (a leading symbol), or a run-time size."""
        if not isinstance(d, str):
            return c64(d)
        return self.batch if axis == 0 else self.sizes[d]

    @property
    def attrs(self) -> dict:
        return self.node.attrs

    def helper(self, name: str, fnty: ir.FunctionType, build) -> ir.Function:
        """Get or create an internal helper function; build(fn) fills its body on first request."""
        fn = self.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.module, fnty, name)
            fn.linkage = "internal"
            build(fn)
        return fn

    def fail(self, code: int, builder: ir.IRBuilder | None = None) -> None:
        """Record an error status (see STATUS_* codes); the run finishes, then the caller raises."""
        b = builder or self.builder
        b.store(ir.Constant(I32, code), self.status)

    def require_library(self, name: str) -> None:
        """Declare a system library the code calls (e.g. 'gomp'); linked into artifacts, loaded for JIT."""
        self.libraries.add(name)

    def take_epilogue(self):
        """Claim the epilogue's in-kernel part (epilogue.in_kernel leading nodes: the bias add and/or
        activation the fuse pass chose): the lowering applies those, the fused lowering the rest."""
        self.epilogue_taken = True
        return self.epilogue


STATUS_OK = 0
STATUS_INDEX_OUT_OF_RANGE = 1
STATUS_COLLECTIVE_FAILED = 2
STATUS_BAD_SHAPE = 3
STATUS_ROW_OUT_OF_RANGE = 4   # (gather_entry.py)
STATUS_MESSAGES = {STATUS_INDEX_OUT_OF_RANGE: "an index was out of range (gather/scatter_add); it was clamped",
                   STATUS_COLLECTIVE_FAILED: "cross_process_sum failed (the summing hook raised; see its error)",
                   STATUS_BAD_SHAPE: "input_shapes disagree with the signature (batch, static dims) or with each "
                                     "other (one dynamic length per symbol), or a dynamic length is 0; nothing ran",
                   STATUS_ROW_OUT_OF_RANGE: "a batch's row index is outside the data it gathers from; nothing ran"}
