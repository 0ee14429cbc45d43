"""Constants live in the generated code as read-only globals; `constant` as an output is a copy."""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ..loops import I8, copy_bytes, i64
from . import lowering
from .context import storage_type


def constant_pointer(module: ir.Module, array: np.ndarray, dtype):
    """A typed element pointer to a private global holding `array` (little-endian bytes)."""
    data = np.ascontiguousarray(array, dtype=dtype.np.newbyteorder("<")).tobytes()
    name = f"kc.const.{len([g for g in module.global_values if g.name.startswith('kc.const.')])}"
    g = ir.GlobalVariable(module, ir.ArrayType(I8, len(data)), name=name)
    g.initializer = ir.Constant(ir.ArrayType(I8, len(data)), bytearray(data))
    g.global_constant = True
    g.linkage = "private"
    g.align = 64
    return g.bitcast(storage_type(dtype).as_pointer())


@lowering("constant")
def lower_constant(ctx):
    """Only reached when a constant is itself a graph output: copy it into the caller's buffer."""
    value = ctx.attrs["value"]
    src = constant_pointer(ctx.module, value, ctx.node.outputs[0].type.dtype)
    b = ctx.builder
    copy_bytes(b, b.bitcast(ctx.outs[0].ptr, I8.as_pointer()), b.bitcast(src, I8.as_pointer()), i64(value.nbytes))
