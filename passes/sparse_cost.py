"""What the sparsify pass measures in a kernel and what it predicts: structure, density, bytes, run time.

The cost model counts the work each kernel does per call, in nanoseconds per unit of work, as a
function of the kernel's shape (K inputs, N outputs), its stored pattern (nonzeros, stored blocks,
"windows" steps), the rows per call (batch x output positions of a convolution) and the target's
f32 vector lanes (16: AVX-512, 8: AVX2). It only has to rank dense against the best sparse layout
at batch 1 and 64, on one thread (dense and sparse kernels both split large batches over threads;
the model ignores that), but a wrong rank is a slower artifact, so the sparse estimates are fitted
per kernel, not guessed from FLOPs:

- dense GEMM (compiler/kernels/gemm.py, and the convolutions that read inputs in place,
  window_tile.py, conv_pool.py): a GEMV streams every weight once (DENSE_GEMV_PER_WEIGHT), rows run
  at DENSE_PER_MAC per multiply-add of the N outputs rounded up to whole vectors, and each output
  element's epilogue and store costs DENSE_PER_OUTPUT (what makes a K = 9 first convolution slow
  per FLOP). Zen 4 runs a 512-bit FMA as two 256-bit halves, so AVX2 measured the same per MAC.
- windows kernel (AVX-512 f32, kernels/sparse_windows.py): per row, each step (16 slots) costs a
  permute + FMA, each input a copy in the layout's order, each output a scalar store through the
  output order, each (panel, window) group its loop exits; rows in groups of 8 share the loads
  and the loop exits (WINDOWS_GROUPED), a lone row does not (WINDOWS_LONE).
- column kernel (CSC, kernels/sparse.py) on tiles of `lanes` rows: per stored element one FMA over
  the tile; the tile's inputs and outputs transposed in register tiles (k * lanes and n * lanes
  elements); a tile larger than L1 makes the FMAs' loads L2 loads (COLUMN_TILE[lanes]), an input
  larger than L2 streams (COLUMN_STREAM_PER_INPUT). Rows left over run as dot products (COLUMN_ROW).
- a convolution's sparse form also copies its patches (PATCH_PER_ELEMENT) and, where the dense
  convolution would take a following max pool into its kernel (passes/fuse_conv_pool.py,
  fuse_int8_pool.py), runs the pool as a pass of its own (POOL_PER_ELEMENT) after computing every
  output position, while the fused dense kernel computes only the positions the pool keeps.

Fitted (least squares, one thread, fastest of interleaved calls, the 0.9 us artifact call
subtracted) on single-layer artifacts of ten matrices (K x N from 64 x 256 to 1024 x 1024, 80-97 %
sparse, 1, 8 and 64 rows) on an AMD EPYC Zen 4 (AVX-512 + VNNI), forced AVX2 for the 8-lane
figures: bench/fit_sparse_cost.py measures them and prints the fit; bench/bench_sparse_layers.py
compares the model with measured speedups layer by layer (convolutions with and without pools).
Typical errors: windows and dense within 10 %, the column kernel within 15-20 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kcompile.ir.ops.sparse import windows_steps

BLOCKS = ((1, 1), (2, 1), (4, 1), (1, 4), (1, 8), (1, 16), (4, 4))
WINDOWS = (32, 16)       # "windows" layout: windows of 32 inputs, panels of 16 outputs (AVX-512 f32 only)
WINDOW_ROW_BYTES_MAX = 1024 * 1024   # its kernel's stack buffers per row (kernels/sparse_windows.py refuses more)
WINDOW_ROW_GROUP = 8     # rows sharing each step's loads (kernels/sparse_windows.ROW_GROUPS)
INDEX_BYTES = 4          # index and offsets are i32
ESTIMATE_BATCHES = (1, 64)
PARTIAL_TILE_MIN = 4     # as compiler/kernels/sparse.py: leftover rows that fill one more batch tile
L1_BYTES = 32 * 1024     # a column tile beyond this (Zen 4's L1D is 32-48 KB) is read from L2
L2_BYTES = 1024 * 1024   # a call's input beyond this (Zen 4's L2 per core) streams from L3 or memory


@dataclass(frozen=True)
class WindowCost:
    """ns per row of the windows kernel, per unit of its work."""

    step: float      # a step of 16 slots: a permute and an FMA (the value and index loads shared in a group)
    input: float     # an input copied into the row buffer in the layout's order
    output: float    # an output stored through the output order with bias + relu
    group: float     # a (panel, window) group's loop entry and exit


@dataclass(frozen=True)
class ColumnCost:
    """ns per batch tile of the column (CSC) kernel, per unit of its work."""

    element: float   # a stored element: one broadcast, load and FMA over the tile
    element_l2: float  # added per element when the transposed tile does not fit L1
    transposed: float  # an input element copied into the transposed tile (k * lanes of them)
    output: float    # an output element extracted from the tile's vector and stored (n * lanes)


DENSE_GEMV_PER_WEIGHT = 0.045     # one row: each weight (N rounded up to whole vectors) streamed once
DENSE_PER_MAC = 0.018             # more rows: a multiply-add (95 % of the FMA peak: 2 x 16 f32 a cycle at 3.7 GHz)
DENSE_PER_OUTPUT = 0.17           # an output element's epilogue and store (conv K = 9: 0.39 us of 0.40 at batch 64)
WINDOWS_LONE = WindowCost(step=0.71, input=0.47, output=0.72, group=0.48)      # 784x512 at 10 %: 5.2 us
WINDOWS_GROUPED = WindowCost(step=0.54, input=0.38, output=0.58, group=0.02)   # ... 64 rows: 210 us
COLUMN_TILE = {16: ColumnCost(element=0.52, element_l2=0.02, transposed=0.15, output=0.19),  # 64 rows: 99 us
               8: ColumnCost(element=0.36, element_l2=0.09, transposed=0.08, output=0.21)}    # AVX2: 128 us
COLUMN_STREAM_PER_INPUT = 0.35   # per input element of a call whose input exceeds L2 (a batch-64 convolution's
                                  # 9 MB of patches: 288x64 at 7744 rows took 250 ns a row, not 115)
COLUMN_ROW = (0.27, 0.06, 1.2)    # a lone row's dot products: per stored block, per block element, per output
                                  # (784x512 at 10 %: 13 us)
BLOCK_PER_BLOCK_ROW = (0.09, 0.014)    # block kernel (1xN blocks), rows in register tiles: fixed + per bn output
                                      # (1x16 blocks at 10%, 64 rows, 51 us; not refitted)
BLOCK_PER_BLOCK_SINGLE = (0.5, 0.04)  # block kernel, a lone row
PATCH_PER_ELEMENT = 0.1           # a convolution's im2col copy (compiler/lower/patches.py), per row and input element
POOL_PER_ELEMENT = 0.1            # a max pool run as its own pass, per conv output element it reads


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


@dataclass(frozen=True)
class Use:
    """What one kernel computes per call at each estimated batch: `rows` of the matrix product (batch
    x output positions of a convolution); for a convolution (`patches`) the sparse side first copies
    K inputs per row; `pool` (k of a k x k max pool, 0: none): the dense convolution takes the pool into
    its kernel and computes only `dense_rows` (the positions the pool reads), the sparse side computes
    every row and then runs the pool over its N outputs."""

    rows: tuple
    patches: bool = False
    pool: int = 0
    dense_rows: tuple = ()

    def dense(self, i: int) -> int:
        return self.dense_rows[i] if self.dense_rows else self.rows[i]

    def sparse_extra_ns(self, k: int, n: int, i: int) -> float:
        """ns the sparse side pays besides its kernel: the patch copy and the unfused pool."""
        return self.rows[i] * (k * PATCH_PER_ELEMENT * self.patches + n * POOL_PER_ELEMENT * bool(self.pool))


def dense_ns(k: int, n: int, rows: int, lanes: int = 16) -> float:
    """The dense GEMM (or in-place convolution): N rounded up to whole vectors of `lanes`; rows in
    micro-kernel tiles of 12/8/4 run at DENSE_PER_MAC, the last rows % 4 in tiles of 2 and 1, each
    streaming the weights like a GEMV (9 rows of 576x128 took 15.6 us, 8 rows 11.2 us)."""
    padded = k * -(-n // max(1, lanes)) * max(1, lanes)
    tail = rows % 4
    passes = (tail >= 2) + tail % 2
    full = padded * DENSE_PER_MAC * (rows - tail) + passes * padded * max(DENSE_GEMV_PER_WEIGHT, DENSE_PER_MAC * 2)
    return full + rows * n * DENSE_PER_OUTPUT


def windows_ns(layout: Layout, k: int, n: int, rows: int) -> float:
    """The windows kernel: rows in groups of WINDOW_ROW_GROUP while they last (and fit its stack), then lone."""
    groups = -(-k // layout.block[0]) * -(-n // layout.block[1])
    row_bytes = (-(-k // layout.block[0]) * layout.block[0] + -(-n // layout.block[1]) * layout.block[1]) * 4
    size = WINDOW_ROW_GROUP if WINDOW_ROW_GROUP * row_bytes <= 256 * 1024 else 1
    grouped = rows // size * size if size > 1 else 0

    def per_row(c: WindowCost) -> float:
        return layout.nblocks * c.step + k * c.input + n * c.output + groups * c.group
    return grouped * per_row(WINDOWS_GROUPED) + (rows - grouped) * per_row(WINDOWS_LONE)


def column_ns(layout: Layout, k: int, n: int, rows: int, lanes: int) -> float:
    """The column kernel (bn == 1): full tiles of `lanes` rows (a partial one padded where it has
    PARTIAL_TILE_MIN rows), the rest as dot products."""
    bk = layout.block[0]
    tiles, rest = (rows // lanes, rows % lanes) if lanes > 1 and k * lanes * 4 <= 512 * 1024 else (0, rows)
    if tiles + rest and lanes > 1 and rest >= min(PARTIAL_TILE_MIN, lanes // 2) and k * lanes * 4 <= 512 * 1024:
        tiles, rest = tiles + 1, 0
    c = COLUMN_TILE.get(lanes, COLUMN_TILE[8])
    per_tile = layout.stored * (c.element + c.element_l2 * (k * lanes * 4 > L1_BYTES)) \
        + k * lanes * c.transposed + n * lanes * c.output
    per_row = layout.nblocks * (COLUMN_ROW[0] + COLUMN_ROW[1] * bk) + n * COLUMN_ROW[2]
    stream = rows * k * COLUMN_STREAM_PER_INPUT if rows * k * 4 > L2_BYTES else 0.0
    return tiles * per_tile + rest * per_row + stream


def sparse_ns(layout: Layout, k: int, n: int, rows: int, lanes: int) -> float:
    if layout.layout == "windows":
        return windows_ns(layout, k, n, rows)
    bk, bn = layout.block
    if bn == 1:
        return column_ns(layout, k, n, rows, lanes)
    fixed, per_col = BLOCK_PER_BLOCK_ROW if rows > 1 else BLOCK_PER_BLOCK_SINGLE
    return rows * layout.nblocks * bk * (fixed + per_col * bn) + n * 1.0


def speedups(layout: Layout, k: int, n: int, use: Use, lanes: int) -> tuple:
    """Estimated dense time / sparse time at each of use.rows."""
    return tuple(round(dense_ns(k, n, use.dense(i), lanes)
                       / (sparse_ns(layout, k, n, r, lanes) + use.sparse_extra_ns(k, n, i)), 2)
                 for i, r in enumerate(use.rows))


MIN_BLOCK_FILL = 0.75    # blocks mostly of stored zeros are not the kernel's structure


def best_layout(w: np.ndarray, use: Use, lanes: int) -> tuple:
    """(layout, estimated speedups at use.rows) of the layout with the best geometric-mean speedup,
    among unstructured storage, the block shapes whose blocks are at least MIN_BLOCK_FILL full, and
    (f32 on 16-lane vectors: AVX-512) the windows layout."""
    k, n = w.shape
    windows = lanes == 16 and w.dtype == np.float32 and (k + n + 2 * WINDOWS[0]) * 4 <= WINDOW_ROW_BYTES_MAX
    scored = [(lay, speedups(lay, k, n, use, lanes)) for lay in layouts(w, windows)
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


def int8_layout(w: np.ndarray, use: Use, permute: bool) -> tuple:
    """(windows layout, estimated speedups over the dense int8 GEMM at use.rows) of an int8 kernel;
    permute: the target has the kernel's vpermi2b + vpdpbusd path (AVX512_VBMI and AVX512_VNNI). Its
    patches are bytes: a quarter of the float copy."""
    k, n = w.shape
    layout = Layout(INT8_WINDOWS, int(windows_steps(w, INT8_WINDOWS).sum()), int((w != 0).sum()), "windows")
    return layout, tuple(round(dense_int8_ns(k, n, use.dense(i))
                               / (sparse_int8_ns(layout, k, n, r, permute) + use.sparse_extra_ns(k, n, i) / 4), 2)
                         for i, r in enumerate(use.rows))

