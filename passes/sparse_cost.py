"""What the sparsify pass measures in a kernel and what it predicts: structure, density, bytes, run time.

The cost model counts the work each kernel of compiler/kernels/sparse.py does per stored block
and per batch row, in nanoseconds fitted to single-thread timings of those kernels and of the
dense GEMM on a 784x512 kernel (AMD EPYC Zen 4, AVX-512; bench/bench_sparse.py reproduces them).
It only has to rank: dense against the best block shape (or, on 16-lane f32 vectors, the windows
layout), at batch 1 (a GEMV) and batched, on one thread (both dense and sparse kernels split large
batches over threads; the model ignores that). The windows figures were fitted on the same kernel:
about 5.2 us at 1 row and 3.2 us per row in groups of 8 for 4,960 steps over 800 (panel, window)
groups (784x512 at 10% density); with them 1x16 blocks keep the block kernel (51 us at 64 rows
against 124 us for windows) and unstructured kernels take windows (5.2 us against 13 us for CSC at
one row, 206 us against 128 us at 64 rows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kcompile.ir.ops.sparse import windows_steps

BLOCKS = ((1, 1), (2, 1), (4, 1), (1, 4), (1, 8), (1, 16), (4, 4))
WINDOWS = (32, 16)       # "windows" layout: windows of 32 inputs, panels of 16 outputs (AVX-512 f32 only)
WINDOW_ROW_BYTES_MAX = 1024 * 1024   # its kernel's stack buffers per row (kernels/sparse_windows.py refuses more)
INDEX_BYTES = 4          # index and offsets are i32
ESTIMATE_BATCHES = (1, 64)
PARTIAL_TILE_MIN = 4     # as compiler/kernels/sparse.py: leftover rows that fill one more batch tile

# ns per unit of work (see the module docstring)
DENSE_PER_WEIGHT = 0.036          # a GEMV streams every weight once
DENSE_PER_WEIGHT_ROW = 0.021      # each batch row adds a GEMM's worth of FMAs
COLUMN_PER_BLOCK_ROW = (0.30, 0.06)  # GEMV over a column's blocks: fixed + per bk element, per row
COLUMN_PER_ELEMENT_TILE = 0.85    # batch tile: one broadcast, load and FMA per stored element per tile
TRANSPOSE_PER_ELEMENT = 0.3       # a tile's transpose, per input element
BLOCK_PER_BLOCK_ROW = (0.09, 0.014)    # block kernel, rows in register tiles: fixed + per bn output
                                      # (refitted: 1x16 blocks at 10%, 64 rows, 51 us)
BLOCK_PER_BLOCK_SINGLE = (0.5, 0.04)  # block kernel, a lone row
WINDOW_PER_STEP = (0.72, 0.62)    # windows kernel, per step of 16 slots and row: a lone row, rows in groups
WINDOW_PER_GROUP = (2.0, 0.3)     # ... per (panel, window) and row (loop exits, mispredicted when lone)


@dataclass(frozen=True)
class Layout:
    """One candidate storage of a kernel: block shape, stored blocks, their fill."""

    block: tuple
    nblocks: int             # stored blocks ("windows": steps of block[1] slots)
    nnz: int
    layout: str = "blocks"

    @property
    def stored(self) -> int:
        if self.layout == "windows":   # steps of C lanes x P slots (ir/ops/sparse.py)
            return self.nblocks * self.block[1] * (self.block[2] if len(self.block) > 2 else 1)
        return self.nblocks * self.block[0] * self.block[1]

    @property
    def fill(self) -> float:
        return self.nnz / self.stored if self.stored else 1.0

    def nbytes(self, n: int, itemsize: int, k: int = 0) -> int:
        if self.layout == "windows":  # u8 index per slot; i32 offsets per (panel, window), i32 row and column orders
            groups = -(-n // self.block[1]) * -(-k // self.block[0])
            return self.stored * (itemsize + 1) + (groups + 1 + k + n) * INDEX_BYTES
        return self.stored * itemsize + (self.nblocks + n // self.block[1] + 1) * INDEX_BYTES


def layouts(w: np.ndarray, windows: bool = False) -> list:
    """Every candidate block shape that divides w, with the blocks holding a nonzero (and the
    "windows" layout if asked: the target runs it vectorized)."""
    k, n = w.shape
    nz = w != 0
    out = [Layout(WINDOWS, int(windows_steps(w, WINDOWS).sum()), int(nz.sum()), "windows")] if windows else []
    for bk, bn in BLOCKS:
        if k % bk == 0 and n % bn == 0:
            blocks = nz.reshape(k // bk, bk, n // bn, bn).any(axis=(1, 3))
            out.append(Layout((bk, bn), int(blocks.sum()), int(nz.sum())))
    return out


def structure(w: np.ndarray, layout: Layout) -> str:
    """A name for the pattern: 'block 1x16', '2:4' (N:M along K), 'unstructured' or 'no zeros'; empty
    outputs (pruned neurons) noted."""
    k, n = w.shape
    nz = w != 0
    if layout.nnz == w.size:
        return "no zeros"
    blocks = layout.block != (1, 1) and layout.layout == "blocks"
    if blocks and layout.fill == 1.0:
        name = f"block {layout.block[0]}x{layout.block[1]}"
    elif k % 4 == 0 and 0 < layout.nnz and nz.reshape(k // 4, 4, n).sum(axis=1).max() <= 2:
        name = f"{int(nz.reshape(k // 4, 4, n).sum(axis=1).max())}:4"
    else:
        name = "unstructured" if not blocks else f"block {layout.block[0]}x{layout.block[1]} " \
                                                              f"(fill {layout.fill:.2f})"
    empty = int((~nz.any(axis=0)).sum())
    return name + (f", {empty} empty outputs" if empty else "")


def dense_ns(k: int, n: int, rows: int) -> float:
    return k * n * (DENSE_PER_WEIGHT + DENSE_PER_WEIGHT_ROW * rows)


def sparse_ns(layout: Layout, k: int, n: int, rows: int, lanes: int) -> float:
    bk, bn = layout.block
    if layout.layout == "windows":
        lone = 0 if rows == 1 else 1
        groups = -(-k // bk) * -(-n // bn)
        return rows * (layout.nblocks * WINDOW_PER_STEP[lone] + groups * WINDOW_PER_GROUP[lone]) + n * 1.0
    if bn == 1:
        tiles, rest = (rows // lanes, rows % lanes) if lanes > 1 else (0, rows)
        if lanes > 1 and rest >= min(PARTIAL_TILE_MIN, lanes // 2):  # the kernel pads them into one more tile
            tiles, rest = tiles + 1, 0
        per_row = layout.nblocks * (COLUMN_PER_BLOCK_ROW[0] + COLUMN_PER_BLOCK_ROW[1] * bk)
        per_tile = layout.stored * COLUMN_PER_ELEMENT_TILE + k * lanes * TRANSPOSE_PER_ELEMENT
        return tiles * per_tile + rest * per_row + n * 2.0
    fixed, per_col = BLOCK_PER_BLOCK_ROW if rows > 1 else BLOCK_PER_BLOCK_SINGLE
    return rows * layout.nblocks * bk * (fixed + per_col * bn) + n * 1.0


def speedups(layout: Layout, k: int, n: int, rows_list, lanes: int, extra_per_row: float = 0.0) -> tuple:
    return tuple(round(dense_ns(k, n, r) / (sparse_ns(layout, k, n, r, lanes) + extra_per_row * r), 2)
                 for r in rows_list)


PATCH_PER_ELEMENT = 0.25   # a convolution's im2col copy (compiler/lower/patches.py), per row and input element
MIN_BLOCK_FILL = 0.75    # blocks mostly of stored zeros are not the kernel's structure


def best_layout(w: np.ndarray, rows_list, lanes: int, extra_per_row: float = 0.0) -> tuple:
    """(layout, estimated speedups at rows_list) of the layout with the best geometric-mean speedup,
    among unstructured storage, the block shapes whose blocks are at least MIN_BLOCK_FILL full, and
    (f32 on 16-lane vectors: AVX-512) the windows layout; extra_per_row: ns the sparse side pays per row
    besides the kernel (a convolution's patches)."""
    k, n = w.shape
    windows = lanes == 16 and w.dtype == np.float32 and (k + n + 2 * WINDOWS[0]) * 4 <= WINDOW_ROW_BYTES_MAX
    scored = [(lay, speedups(lay, k, n, rows_list, lanes, extra_per_row)) for lay in layouts(w, windows)
              if lay.block == (1, 1) or lay.layout == "windows" or lay.fill >= MIN_BLOCK_FILL]
    return max(scored, key=lambda s: math.prod(s[1]) ** (1 / len(s[1])))


# -- int8 (sparse_qmatmul against the dense int8 GEMM) ------------------------------------------
# Fitted like the float figures, on artifacts of one quantized layer (one thread, Zen 4, AVX-512
# VNNI + VBMI; fastest of many calls, the host being shared): 784x512 at 10% (994 steps of 64 slots
# over 224 groups) took about 5 us dense and 2.7 us sparse at 1 row, 127 us and 83 us at 64 rows;
# 1024x1024 at 5% (1,552 steps) 13.8 / 4.3 us and 332 / 140 us. The dense int8 GEMM's batches are
# cheap (vpdpbusd: 64 multiply-adds an instruction); so is a sparse step (vpermi2b + vpdpbusd), but
# padding fills about a third of its slots.
INT8_WINDOWS = (128, 16, 4)      # as compiler/kernels/sparse_int8.BLOCK
DENSE_INT8_PER_WEIGHT = 0.0077   # the int8 GEMV: packed weights streamed once
DENSE_INT8_PER_WEIGHT_ROW = 0.0048   # each batch row adds a GEMM's worth of vpdpbusd
INT8_PER_STEP = (1.9, 0.7)       # sparse int8 windows, per step of 64 slots and row: a lone row, rows in groups
INT8_PER_GROUP = (2.0, 0.3)      # ... per (panel, window) and row
INT8_PER_OUTPUT = 0.3            # the zero-point correction and requantize epilogue, per output and row
INT8_PER_INPUT = 0.5             # each row's copy in the layout's input order, per input
INT8_NO_PERMUTE = 12.0           # without VBMI + VNNI (AVX2) each step gathers its inputs: 784x512 at 10%, 31 us at
                                 # 1 row with 32-slot steps (dense int8 on AVX2: 23 us)


def int8_fits(k: int, n: int) -> bool:
    """Whether the sparse int8 kernel's row buffers (8-bit inputs, i32 sums) fit its stack limit."""
    return k + INT8_WINDOWS[0] + (n + INT8_WINDOWS[1]) * 4 <= WINDOW_ROW_BYTES_MAX


def dense_int8_ns(k: int, n: int, rows: int) -> float:
    return k * n * (DENSE_INT8_PER_WEIGHT + DENSE_INT8_PER_WEIGHT_ROW * rows)


def sparse_int8_ns(layout: Layout, k: int, n: int, rows: int, permute: bool) -> float:
    lone = 0 if rows == 1 else 1
    groups = -(-k // layout.block[0]) * -(-n // layout.block[1])
    step = INT8_PER_STEP[lone] * (1.0 if permute else INT8_NO_PERMUTE)
    return rows * (layout.nblocks * step + groups * INT8_PER_GROUP[lone] + n * INT8_PER_OUTPUT + k * INT8_PER_INPUT)


def int8_layout(w: np.ndarray, rows_list, permute: bool, extra_per_row: float = 0.0) -> tuple:
    """(windows layout, estimated speedups over the dense int8 GEMM at rows_list) of an int8 kernel;
    permute: the target has the kernel's vpermi2b + vpdpbusd path (AVX512_VBMI and AVX512_VNNI);
    extra_per_row: ns the sparse side pays per row besides the kernel (a convolution's patches)."""
    k, n = w.shape
    layout = Layout(INT8_WINDOWS, int(windows_steps(w, INT8_WINDOWS).sum()), int((w != 0).sum()), "windows")
    return layout, tuple(round(dense_int8_ns(k, n, r) / (sparse_int8_ns(layout, k, n, r, permute)
                                                         + extra_per_row * r), 2) for r in rows_list)

