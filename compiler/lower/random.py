"""random_uniform_like: the counter-based hash of ir/ops/random.py, bit for bit, in vectors."""
from __future__ import annotations

from llvmlite import ir

from ..loops import F32, I32, const, i64, splat, store, vec_type, vector_range
from . import lowering


def fmix32(b, h):
    """MurmurHash3's finalizer on i32 (vector) values, wrapping like the uint32 reference."""
    c = lambda v: const(h.type, v - (1 << 32) if v >= 1 << 31 else v)  # noqa: E731  (signed literals)
    h = b.xor(h, b.lshr(h, c(16)))
    h = b.mul(h, c(0x85EBCA6B))
    h = b.xor(h, b.lshr(h, c(13)))
    h = b.mul(h, c(0xC2B2AE35))
    return b.xor(h, b.lshr(h, c(16)))


def _u32(v: int) -> ir.Constant:
    return ir.Constant(I32, v - (1 << 32) if v >= 1 << 31 else v)


@lowering("random_uniform_like")
def lower_random_uniform_like(ctx):
    b, (x, counter), (y,) = ctx.builder, ctx.ins, ctx.outs
    seed = ctx.attrs["seed"] & 0xFFFFFFFF
    c = b.load(counter.ptr)
    lo = b.trunc(c, I32)
    hi = b.trunc(b.lshr(c, i64(32)), I32)
    s = fmix32(b, b.add(b.mul(_u32(seed), _u32(0x9E3779B9)), lo))
    s = fmix32(b, b.xor(s, b.mul(hi, _u32(0x85EBCA6B))))

    def body(i, width):
        lane = ir.Constant(vec_type(I32, width), list(range(width)) if width > 1 else 0)
        idx = b.add(splat(b, b.trunc(i, I32), width), lane)  # flat index mod 2**32
        h = fmix32(b, b.xor(splat(b, s, width), b.mul(idx, const(idx.type, _u32(0xCC9E2D51).constant))))
        u = b.uitofp(b.lshr(h, const(h.type, 8)), vec_type(F32, width))
        store(b, b.fmul(u, const(u.type, 2.0 ** -24)), b.gep(y.ptr, [i]))

    vector_range(b, x.numel(b), ctx.target.lanes(4), body, name="rng")
