"""GEMM operands over strided memory: batch offsets, direct access and packing into micro-panels.

A batch of GEMMs shares one batch shape (static, except a leading run-time batch size); each operand
has its own element strides per batch axis (0 where it broadcasts).  Matrix element (i, j) of batch
item `bi` lives at base + offset(bi) + i*rs + j*cs.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from .irutil import for_range, gep, i64, imin, lane_mask, load_vec, masked_load, store_vec


@dataclass(frozen=True)
class BatchShape:
    """Sizes of the batch axes; dims[0] may be "N" (the run-time batch size)."""

    dims: tuple = ()

    def count(self, b: ir.IRBuilder, batch):
        n = i64(1)
        for d in self.dims:
            n = b.mul(n, batch if isinstance(d, str) else i64(d))
        return n

    def offset(self, b: ir.IRBuilder, bi, strides: tuple):
        """Element offset of batch item `bi` for an operand with these per-axis strides."""
        off, rest = i64(0), bi
        for axis in reversed(range(len(self.dims))):
            size = self.dims[axis]
            idx = rest if axis == 0 else b.srem(rest, i64(size))
            if strides[axis]:
                off = b.add(off, b.mul(idx, i64(strides[axis])))
            if axis:
                rest = b.sdiv(rest, i64(size))
        return off


@dataclass(frozen=True)
class Strided:
    """One matrix operand in memory: row stride, column stride, per-batch-axis strides."""

    rs: int
    cs: int
    batch_strides: tuple = ()

    def base(self, b, ptr, batch_shape: BatchShape, bi):
        if not any(self.batch_strides):
            return ptr
        return gep(b, ptr, batch_shape.offset(b, bi, self.batch_strides))

    def at(self, b, base, i, j):
        return gep(b, base, b.add(b.mul(i, i64(self.rs)), b.mul(j, i64(self.cs))))


class StridedA:
    """A[M x K] read directly or packed into MR-row panels: panel[k*MR + r]."""

    packed_only = False

    def __init__(self, layout: Strided, batch_shape: BatchShape):
        self.layout, self.batch_shape = layout, batch_shape

    def direct(self, b, ptr, bi, row, k0):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        return self.layout.at(b, base, row, k0), i64(self.layout.rs), i64(self.layout.cs)

    def pack(self, b, ptr, bi, dst, m0, mc, k0, kc, mr_tile):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        with for_range(b, 0, mc, mr_tile, "pa.i") as ip:
            rows = imin(b, mr_tile, b.sub(mc, ip))
            panel = gep(b, dst, b.mul(ip, kc))
            row0 = b.add(m0, ip)
            if self.layout.cs == 1:   # rows are contiguous in k: copy row by row
                with for_range(b, 0, rows, 1, "pa.r") as r:
                    src = self.layout.at(b, base, b.add(row0, r), k0)
                    with for_range(b, 0, kc, 1, "pa.k") as k:
                        b.store(b.load(gep(b, src, k)), gep(b, panel, b.add(b.mul(k, i64(mr_tile)), r)))
            else:
                with for_range(b, 0, kc, 1, "pa.k") as k:
                    with for_range(b, 0, rows, 1, "pa.r") as r:
                        src = self.layout.at(b, base, b.add(row0, r), b.add(k0, k))
                        b.store(b.load(src), gep(b, panel, b.add(b.mul(k, i64(mr_tile)), r)))


class StridedB:
    """B[K x N] read directly (when columns are contiguous) or packed into NR-column panels."""

    def __init__(self, layout: Strided, batch_shape: BatchShape, lanes: int):
        self.layout, self.batch_shape, self.lanes = layout, batch_shape, lanes
        self.direct_ok = layout.cs == 1

    def direct(self, b, ptr, bi, k0, col):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        return self.layout.at(b, base, k0, col), i64(self.layout.rs)

    def pack(self, b, ptr, bi, dst, k0, kc, n0, nc, nr_tile):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        with for_range(b, 0, nc, nr_tile, "pb.j") as jp:
            cols = imin(b, nr_tile, b.sub(nc, jp))
            panel = gep(b, dst, b.mul(jp, kc))
            col0 = b.add(n0, jp)
            if self.direct_ok:
                self._pack_rows(b, base, panel, k0, kc, col0, cols, nr_tile)
            else:
                self._pack_columns(b, base, panel, k0, kc, col0, cols, nr_tile)

    def _pack_rows(self, b, base, panel, k0, kc, col0, cols, nr_tile):
        lanes = self.lanes
        masks = [lane_mask(b, b.sub(cols, i64(v * lanes)), lanes) for v in range(nr_tile // lanes)]
        full = b.icmp_signed("==", cols, i64(nr_tile))
        with for_range(b, 0, kc, 1, "pb.k") as k:
            src = self.layout.at(b, base, b.add(k0, k), col0)
            dst = gep(b, panel, b.mul(k, i64(nr_tile)))
            with b.if_else(full) as (then, otherwise):
                with then:
                    for v in range(nr_tile // lanes):
                        store_vec(b, load_vec(b, gep(b, src, i64(v * lanes)), lanes), gep(b, dst, i64(v * lanes)))
                with otherwise:
                    for v, m in enumerate(masks):
                        store_vec(b, masked_load(b, gep(b, src, i64(v * lanes)), m, lanes),
                                  gep(b, dst, i64(v * lanes)))

    def _pack_columns(self, b, base, panel, k0, kc, col0, cols, nr_tile):
        with for_range(b, 0, cols, 1, "pb.c") as j:
            with for_range(b, 0, kc, 1, "pb.k") as k:
                src = self.layout.at(b, base, b.add(k0, k), b.add(col0, j))
                b.store(b.load(src), gep(b, panel, b.add(b.mul(k, i64(nr_tile)), j)))


class StridedC:
    """C[M x N] rows with stride ldc, contiguous columns; `accumulate` adds to what is there."""

    def __init__(self, layout: Strided, batch_shape: BatchShape, accumulate: bool = False, group_cols: int = 0):
        if layout.cs != 1:
            raise ValueError("GEMM output columns must be contiguous")
        self.layout, self.batch_shape, self.accumulate = layout, batch_shape, accumulate
        self.group_cols = group_cols   # a grouped convolution's batch item g owns columns g*group_cols...

    def tile(self, b, ptr, bi, row, col):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        return self.layout.at(b, base, row, col), i64(self.layout.rs)

    def epilogue_col(self, b, bi, col):
        """The output column an epilogue sees (a channel index for grouped convolutions)."""
        return b.add(col, b.mul(bi, i64(self.group_cols))) if self.group_cols else col

