"""FALLBACK matmul: plain i-k-j loops (the j loop vectorizes), correct for every case the op
allows (batched, broadcast, transposed, integer). The packed micro-kernel lowering of
compiler/lower/nn.py replaces it whenever that module registers "matmul".
"""
from __future__ import annotations

from llvmlite import ir

from ..loops import FAST, for_range, i64, loop_nest, offset, row_major_strides
from . import lowering
from .context import storage_type


def _batch_strides(b, buf, out_batch_rank):
    """Strides of buf's leading (batch) axes aligned to the output's, 0 where broadcast."""
    lead = buf.rank - 2
    strides = row_major_strides(b, buf.dims)[:lead]
    out = [i64(0)] * (out_batch_rank - lead)
    for ax in range(lead):
        out.append(i64(0) if buf.shape[ax] == 1 else strides[ax])
    return out


@lowering("matmul", fallback=True)
def lower_matmul_fallback(ctx):
    b, (x, w), (y,) = ctx.builder, ctx.ins, ctx.outs
    ta, tb = ctx.attrs["transpose_a"], ctx.attrs["transpose_b"]
    m, n = y.dims[-2], y.dims[-1]
    k = x.dims[-2] if ta else x.dims[-1]
    xs, ws = row_major_strides(b, x.dims), row_major_strides(b, w.dims)
    x_i, x_k = (xs[-1], xs[-2]) if ta else (xs[-2], xs[-1])
    w_k, w_j = (ws[-1], ws[-2]) if tb else (ws[-2], ws[-1])
    nb = y.rank - 2
    ys = row_major_strides(b, y.dims)
    elem = storage_type(y.dtype)
    is_float = y.dtype.is_float
    zero = ir.Constant(elem, 0.0 if is_float else 0)
    with loop_nest(b, y.dims[:nb], name="mm.b") as bidx:
        xb = b.gep(x.ptr, [offset(b, bidx, _batch_strides(b, x, nb))])
        wb = b.gep(w.ptr, [offset(b, bidx, _batch_strides(b, w, nb))])
        yb = b.gep(y.ptr, [offset(b, bidx, ys[:nb])])
        with for_range(b, m, name="mm.i") as i:
            row = b.gep(yb, [b.mul(i, n)])
            with for_range(b, n, name="mm.z") as j:
                b.store(zero, b.gep(row, [j]))
            with for_range(b, k, name="mm.k") as kk:
                a = b.load(b.gep(xb, [b.add(b.mul(i, x_i), b.mul(kk, x_k))]))
                wrow = b.gep(wb, [b.mul(kk, w_k)])
                with for_range(b, n, name="mm.j") as j:
                    p = b.gep(row, [j])
                    v = b.load(b.gep(wrow, [b.mul(j, w_j)]))
                    prod = b.fmul(a, v, flags=FAST) if is_float else b.mul(a, v)
                    b.store(b.fadd(b.load(p), prod, flags=FAST) if is_float else b.add(b.load(p), prod), p)
