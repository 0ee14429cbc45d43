"""random_uniform_like, bit-exact: the counter hash of ir/ops/random.py written with ONNX integer
ops on uint64 (each product of two 32-bit values fits, and every step masks back to 32 bits, as
the reference does), so dropout masks match the reference and native code exactly."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from . import onnx_op

M32 = 0xFFFFFFFF


@onnx_op("random_uniform_like")
def _random_uniform_like(ctx, node, ins, outs):
    x, counter = ins
    c = ctx.emit("Cast", [counter], to=TensorProto.UINT64)          # two's complement, as `& 2**64 - 1`
    lo, hi = _and32(ctx, c), _shift_right(ctx, c, 32)
    seed_term = (node.attrs["seed"] & M32) * 0x9E3779B9            # a constant: folded here, exactly
    s = _fmix32(ctx, _and32(ctx, ctx.emit("Add", [_u64(ctx, seed_term), lo])))
    s = _fmix32(ctx, ctx.emit("BitwiseXor", [s, _mul32(ctx, hi, 0x85EBCA6B)]))
    flat = ctx.emit("Range", [ctx.const(np.array(0, np.int64), "zero"), ctx.emit("Size", [x]),
                              ctx.const(np.array(1, np.int64), "one")])
    index = _and32(ctx, ctx.emit("Cast", [flat], to=TensorProto.UINT64))
    h = _fmix32(ctx, ctx.emit("BitwiseXor", [s, _mul32(ctx, index, 0xCC9E2D51)]))
    top24 = ctx.emit("Cast", [_shift_right(ctx, h, 8)], to=TensorProto.FLOAT)   # < 2**24: exact in f32
    u = ctx.emit("Mul", [top24, ctx.const(np.array(2.0 ** -24, np.float32), "two_pow_minus_24")])
    ctx.emit("Reshape", [u, ctx.emit("Shape", [x])], out=outs[0])


def _fmix32(ctx, h):
    """MurmurHash3's finalizer on 32-bit values held in uint64."""
    h = ctx.emit("BitwiseXor", [h, _shift_right(ctx, h, 16)])
    h = _mul32(ctx, h, 0x85EBCA6B)
    h = ctx.emit("BitwiseXor", [h, _shift_right(ctx, h, 13)])
    h = _mul32(ctx, h, 0xC2B2AE35)
    return ctx.emit("BitwiseXor", [h, _shift_right(ctx, h, 16)])


def _u64(ctx, value: int) -> str:
    return ctx.const(np.array(value, np.uint64), "u64")


def _and32(ctx, t):
    return ctx.emit("BitwiseAnd", [t, _u64(ctx, M32)])


def _mul32(ctx, t, factor: int):
    return _and32(ctx, ctx.emit("Mul", [t, _u64(ctx, factor)]))


def _shift_right(ctx, t, bits: int):
    return ctx.emit("BitShift", [t, _u64(ctx, bits)], direction="RIGHT")
