"""The lowering table: op name -> function that emits the op's loops into the entry function.

How to add a lowering (one per op, beside its siblings in a module of this package)::

    from kcompile.compiler.lower import lowering

    @lowering("my_op")
    def lower_my_op(ctx):            # ctx: LowerCtx (lower/context.py)
        b = ctx.builder              # llvmlite IRBuilder positioned inside the entry function
        x, = ctx.ins                 # Buffers: .ptr (typed element pointer), .dims (i64 values),
        y, = ctx.outs                #   .shape (static, "N" = batch), .dtype, .numel(b), .strides(b)
        ...                          # loops via compiler.loops: for_range, loop_nest, vector_range

The context also gives ctx.batch (i64), ctx.nthreads (i32), ctx.target (features, vector lanes),
ctx.attrs, ctx.helper(name, fnty, build) for internal helper functions (e.g. parallel bodies),
ctx.require_library("gomp") for system libraries, ctx.fail(code) to report a run-time error
status, and ctx.epilogue: the epilogue a fused node hands its matmul/conv (lower/fused.py); the
lowering applies its in-kernel part (ctx.epilogue.bias, .activation) after ctx.take_epilogue(),
and the fused lowering runs the rest in place on outs[0] after the lowering returns.

Output buffers never alias input buffers. Every module of this package is imported on first use
of the table, so registering is just defining the function in a module here.
"""
from __future__ import annotations

import importlib
import pkgutil

LOWERINGS: dict = {}
# Ops whose lowering takes every extent from Buffer.dims at run time, so a symbolic non-batch dim
# (a dynamic sequence length T) may reach them; codegen refuses the others by name on such tensors.
RUN_TIME_EXTENTS: set = set()


def run_time_extents(*ops: str) -> None:
    """Declare that these ops' lowerings (beside which this is called) need no static sizes."""
    RUN_TIME_EXTENTS.update(ops)


def lowering(*ops: str):
    """Register fn as the lowering of `ops` (one lowering per op: a second one is an error, a reload is not)."""
    def register(fn):
        for op in ops:
            old = LOWERINGS.get(op)
            if old is not None and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
                raise ValueError(f"op '{op}' has two lowerings: {LOWERINGS[op].__module__} and {fn.__module__}")
            LOWERINGS[op] = fn
        return fn
    return register


def load_all() -> dict:
    """Import every lowering module of this package (idempotent) and return the table."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{info.name}")
    return LOWERINGS


def get_lowering(op: str):
    table = load_all()
    if op not in table:
        raise NotImplementedError(f"op '{op}' has no native lowering (compiler/lower); "
                                  "it cannot be compiled yet")
    return table[op]
