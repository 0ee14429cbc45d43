"""cross_process_sum: copy x into y, then hand y to the process-summing hook through a function pointer.

Protocol (as threads.py's launcher): a module that uses the op defines the global
`kc_cross_process_sum`, an `i32 (*)(void *data, i64 count, i32 element_bytes)` (f32 or f64) initialized to null. The JIT points it
at a ctypes callback running kcompile.ir.ops.collective's hook (`bind_sum_hook`); a non-zero return
sets the entry point's status, so the caller raises. Left null (an AOT artifact, C callers) the op is
the identity, the sum over one process.
"""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir

from kcompile.ir.ops.collective import run_sum_hook

from ..loops import I8P, I32, I64, copy_bytes, function_pointer_global, i64
from . import lowering
from .context import STATUS_COLLECTIVE_FAILED

HOOK_SYMBOL = "kc_cross_process_sum"
HOOK_TYPE = ir.FunctionType(I32, [I8P, I64, I32])
_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)
_FLOATS = {4: ctypes.c_float, 8: ctypes.c_double}


@lowering("cross_process_sum")
def lower_cross_process_sum(ctx):
    b, (x,), (y,) = ctx.builder, ctx.ins, ctx.outs
    count, size = x.numel(b), x.dtype.np.itemsize
    copy_bytes(b, b.bitcast(y.ptr, I8P), b.bitcast(x.ptr, I8P), b.mul(count, i64(size)))
    hook = b.load(function_pointer_global(b.module, HOOK_SYMBOL, HOOK_TYPE))
    bound = b.icmp_unsigned("!=", b.ptrtoint(hook, I64), i64(0))
    with b.if_then(bound):
        status = b.call(hook, [b.bitcast(y.ptr, I8P), count, ir.Constant(I32, size)])
        with b.if_then(b.icmp_signed("!=", status, ir.Constant(I32, 0)), likely=False):
            ctx.fail(STATUS_COLLECTIVE_FAILED, b)


def _sum_in_place(data: int, count: int, element_bytes: int) -> int:
    elem = _FLOATS[element_bytes]
    buf = np.ctypeslib.as_array((elem * count).from_address(data)) if count else np.empty(0, elem)
    return 0 if run_sum_hook(buf) else 1


_CALLBACK = _CALLBACK_TYPE(_sum_in_place)   # kept alive for the process: loaded code may call it


def bind_sum_hook(global_address) -> bool:
    """Point a loaded module's `kc_cross_process_sum` at the Python hook; False if the module has none."""
    slot = global_address(HOOK_SYMBOL)
    if not slot:
        return False
    ctypes.c_void_p.from_address(slot).value = ctypes.cast(_CALLBACK, ctypes.c_void_p).value
    return True


