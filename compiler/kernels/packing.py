"""Shared packing routines (one noinline function per element type and tile size, reused by every GEMM).

pack_a: A block (mc x kc, element (i, k) at src[i*rs + k*cs]) -> MR-row panels, panel[k*MR + r].
pack_b: B block (kc x nc, element (k, j) at src[k*rs + j*cs]) -> NR-column panels, panel[k*NR + j];
        contiguous rows (cs == 1) are copied in vectors, row by row across the whole panels, a
        partial last panel with masked loads.
"""
from __future__ import annotations

from llvmlite import ir

from ..kernel_library import library_kernel
from ..loops import (I64, for_range, gep, i64, imin, lane_mask, load_vec, masked_gather,
                     masked_load, splat, store_vec, type_suffix)

_ARGS = ("dst", "src", "rs", "cs", "rows", "cols")


def _function(module, name, elem):
    """The packing function to fill in, or None when the module has it or its code is compiled already."""
    ptr = elem.as_pointer()
    made = library_kernel(module, name, ir.VoidType(), [ptr, ptr, I64, I64, I64, I64], _ARGS)
    if made is None:
        return None
    fn, emit_body = made
    fn.attributes.add("noinline")
    fn.attributes.add("nounwind")
    return fn if emit_body else None


def pack_a_function(module: ir.Module, elem: ir.Type, mr: int) -> ir.Function:
    """void (dst, src, rs, cs, mc, kc)."""
    name = f"kc_pack_a_{type_suffix(elem)}_{mr}"
    fn = _function(module, name, elem)
    if fn is None:
        return module.globals[name]
    dst, src, rs, cs, mc, kc = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, 0, mc, mr, "i") as ip:
        rows = imin(b, mr, b.sub(mc, ip))
        panel = gep(b, dst, b.mul(ip, kc))
        first = gep(b, src, b.mul(ip, rs))
        # k outer, rows inner: the panel is written sequentially; the rows are read as mr streams
        with for_range(b, 0, kc, 1, "k") as k:
            col = gep(b, first, b.mul(k, cs))
            out = gep(b, panel, b.mul(k, i64(mr)))
            with for_range(b, 0, rows, 1, "r") as r:
                b.store(b.load(gep(b, col, b.mul(r, rs))), gep(b, out, r))
    b.ret_void()
    return fn


def pack_b_function(module: ir.Module, elem: ir.Type, lanes: int, nr: int) -> ir.Function:
    """void (dst, src, rs, cs, kc, nc)."""
    name = f"kc_pack_b_{type_suffix(elem)}_{nr}"
    fn = _function(module, name, elem)
    if fn is None:
        return module.globals[name]
    dst, src, rs, cs, kc, nc = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    full = b.mul(b.sdiv(nc, i64(nr)), i64(nr))   # columns in whole panels
    with b.if_else(b.icmp_signed("==", cs, i64(1))) as (contiguous, strided):
        with contiguous:
            _copy_full_panels(b, dst, src, rs, kc, full, nr, lanes)
            with b.if_then(b.icmp_signed("<", full, nc)):
                _copy_rows(b, gep(b, dst, b.mul(full, kc)), gep(b, src, full), rs, kc, nr, lanes,
                           b.sub(nc, full))
        with strided:
            with for_range(b, 0, nc, nr, "j") as jp:
                cols = imin(b, nr, b.sub(nc, jp))
                _copy_columns(b, gep(b, dst, b.mul(jp, kc)), gep(b, src, b.mul(jp, cs)), rs, cs, kc, nr,
                              lanes, cols)
    b.ret_void()
    return fn


def _copy_full_panels(b, dst, src, rs, kc, width, nr, lanes):
    """Row k of every whole panel in turn, k outer: the source is read row by row, contiguously, so
    the hardware prefetcher streams it (panel by panel, each NR-wide row piece was a separate
    strided access: 1.6 MB of dense weights packed 2x slower)."""
    with for_range(b, 0, kc, 1, "k") as k:
        row, out = gep(b, src, b.mul(k, rs)), gep(b, dst, b.mul(k, i64(nr)))
        with for_range(b, 0, width, nr, "j") as jp:
            at, to = gep(b, row, jp), gep(b, out, b.mul(jp, kc))
            for v in range(nr // lanes):
                store_vec(b, load_vec(b, gep(b, at, i64(v * lanes)), lanes), gep(b, to, i64(v * lanes)))


def _copy_rows(b, panel, src, rs, kc, nr, lanes, cols):
    masks = [lane_mask(b, b.sub(cols, i64(v * lanes)), lanes) for v in range(nr // lanes)]
    with for_range(b, 0, kc, 1, "k") as k:
        row, out = gep(b, src, b.mul(k, rs)), gep(b, panel, b.mul(k, i64(nr)))
        for v, m in enumerate(masks):
            at = gep(b, row, i64(v * lanes))
            store_vec(b, masked_load(b, at, m, lanes), gep(b, out, i64(v * lanes)))


def _copy_columns(b, panel, src, rs, cs, kc, nr, lanes, cols):
    """Strided columns (B transposed): each panel row is gathered, a vector of columns at a time."""
    lane = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
    parts = []
    for v in range(nr // lanes):
        first = b.add(splat(b, i64(v * lanes), lanes), lane)
        parts.append((b.mul(first, splat(b, cs, lanes)), lane_mask(b, b.sub(cols, i64(v * lanes)), lanes)))
    with for_range(b, 0, kc, 1, "k") as k:
        row, out = gep(b, src, b.mul(k, rs)), gep(b, panel, b.mul(k, i64(nr)))
        for v, (index, mask) in enumerate(parts):
            store_vec(b, masked_gather(b, row, index, mask, lanes), gep(b, out, i64(v * lanes)))
