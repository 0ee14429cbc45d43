"""GEMM operands over strided memory: batch offsets, direct access and packing into micro-panels.

A batch of GEMMs shares one batch shape (static, except a leading run-time batch size); each operand
has its own element strides per batch axis (0 where it broadcasts).  Matrix element (i, j) of batch
item `bi` lives at base + offset(bi) + i*rs + j*cs.
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from ..loops import gep, i64
from .packing import pack_a_function, pack_b_function


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
        # Measured here: row-major A read in place (MR row streams) beats packing it by 8-15%;
        # a transposed A (columns contiguous) with a long K gains ~15% from packing.
        self.pack_pays = layout.cs != 1

    def direct(self, b, ptr, bi, row, k0):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        return self.layout.at(b, base, row, k0), i64(self.layout.rs), i64(self.layout.cs)

    def packed_strides(self, kc, mr_tile):
        """(rsa, csa) of the packed panels: panel[k*MR + r]."""
        return i64(1), i64(mr_tile)

    def pack(self, b, ptr, bi, dst, m0, mc, k0, kc, mr_tile):
        base = self.layout.base(b, ptr, self.batch_shape, bi)
        fn = pack_a_function(b.module, dst.type.pointee, mr_tile)
        b.call(fn, [dst, self.layout.at(b, base, m0, k0), i64(self.layout.rs), i64(self.layout.cs), mc, kc])


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
        fn = pack_b_function(b.module, dst.type.pointee, self.lanes, nr_tile)
        b.call(fn, [dst, self.layout.at(b, base, k0, n0), i64(self.layout.rs), i64(self.layout.cs), kc, nc])


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

