"""Transpose a strided f32 block in register tiles of L x L (L = vector lanes): L row loads, log2(L) rounds
of two-input shuffles, L column stores. The GEMM's B packing gathers a transposed B one element per lane
(vgatherdps: slow on current x86 cores); the fused attention kernel transposes each head's K with this
instead, so its scores GEMM reads K^T rows in place. Edge tiles use masked loads and stores.
"""
from __future__ import annotations

from llvmlite import ir

from ..loops import I32, I64, for_range, gep, i64, imin, lane_mask, masked_load, masked_store, splat
from ..kernel_library import library_kernel

F32 = ir.FloatType()


def shuffle_masks(lanes: int) -> list:
    """Per round (w = lanes/2 .. 1): (w, mask of the low row, mask of the high row) for rows r and r + w,
    swapping the off-diagonal w x w blocks of every 2w x 2w block."""
    rounds, w = [], lanes // 2
    while w >= 1:
        low, high = [], []
        for c in range(0, lanes, 2 * w):
            low += [c + i for i in range(w)] + [lanes + c + i for i in range(w)]
            high += [c + w + i for i in range(w)] + [lanes + c + w + i for i in range(w)]
        rounds.append((w, low, high))
        w //= 2
    return rounds


def transpose_registers(b: ir.IRBuilder, rows: list) -> list:
    """The lanes x lanes matrix held as `rows` (vectors), transposed: result[c][r] = rows[r][c]."""
    lanes = len(rows)
    rows = list(rows)
    for w, low, high in shuffle_masks(lanes):
        lo_mask, hi_mask = (ir.Constant(ir.VectorType(I32, lanes), m) for m in (low, high))
        out = list(rows)
        for r in range(lanes):
            if r % (2 * w) < w:
                out[r] = b.shuffle_vector(rows[r], rows[r + w], lo_mask)
                out[r + w] = b.shuffle_vector(rows[r], rows[r + w], hi_mask)
        rows = out
    return rows


def transpose_function(module: ir.Module, lanes: int) -> ir.Function:
    """`void f(f32* dst, f32* src, i64 ld_dst, i64 ld_src, i64 rows, i64 cols)`:
    dst[c*ld_dst + r] = src[r*ld_src + c] for r < rows, c < cols."""
    name = f"kc_transpose_f32_{lanes}"
    ptr = F32.as_pointer()
    made = library_kernel(module, name, ir.VoidType(), [ptr, ptr, I64, I64, I64, I64],
                          ("dst", "src", "ld_dst", "ld_src", "rows", "cols"))
    if made is None:
        return module.globals[name]
    fn, emit_body = made
    if not emit_body:
        return fn
    dst, src, ld_dst, ld_src, rows, cols = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, 0, rows, lanes, "tr.r") as r0:
        nr = imin(b, lanes, b.sub(rows, r0))
        with for_range(b, 0, cols, lanes, "tr.c") as c0:
            nc = imin(b, lanes, b.sub(cols, c0))
            col_mask = lane_mask(b, nc, lanes)
            regs = []
            for i in range(lanes):
                present = b.icmp_signed("<", i64(i), nr)
                row = b.add(r0, imin(b, i64(i), b.sub(nr, i64(1))))   # a real row's address even when masked off
                at = gep(b, src, b.add(b.mul(row, ld_src), c0))
                regs.append(masked_load(b, at, b.and_(col_mask, splat(b, present, lanes)), lanes))
            row_mask = lane_mask(b, nr, lanes)
            for i, vec in enumerate(transpose_registers(b, regs)):
                present = b.icmp_signed("<", i64(i), nc)
                col = b.add(c0, imin(b, i64(i), b.sub(nc, i64(1))))
                masked_store(b, vec, gep(b, dst, b.add(b.mul(col, ld_dst), r0)),
                             b.and_(row_mask, splat(b, present, lanes)))
    b.ret_void()
    return fn
