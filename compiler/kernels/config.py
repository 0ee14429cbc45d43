"""Kernel shape choices (vector lanes, micro-tile, cache blocks) derived from the target's CPU features."""
from __future__ import annotations

from dataclasses import dataclass


def _has(features: str, name: str) -> bool:
    return f"+{name}" in features.split(",")


def vector_bits(features: str) -> int:
    """Widest native vector register: AVX-512 -> 512, AVX/AVX2 -> 256, otherwise SSE's 128."""
    if _has(features, "avx512f"):
        return 512
    if _has(features, "avx"):
        return 256
    return 128


def vector_registers(features: str) -> int:
    return 32 if _has(features, "avx512f") else 16


@dataclass(frozen=True)
class GemmShape:
    """Register tile MR x NR (NR = 2 vectors) and cache blocks for one element type."""

    lanes: int
    mr: int
    nr: int
    kc: int
    mc: int
    nc: int


def gemm_shape(features: str, elem_bytes: int, n: int | None = None) -> GemmShape:
    """Pick the micro-tile so that MR*NV accumulators + NV B vectors + 1 broadcast fit the register file.

    NV = 2 vectors of columns, or 1 when the GEMM has at most one vector of columns (N static),
    which then affords twice the rows.
    """
    lanes = vector_bits(features) // (8 * elem_bytes)
    regs = vector_registers(features)
    nv = 1 if n is not None and n <= lanes else 2
    mr = min((regs - 1 - nv) // nv, 12 * (3 - nv))
    nr = nv * lanes
    # KC = 384 f32: a conv's K = 3*3*32 = 288 is one block (a second block re-streams all of C, which
    # for a tall conv output no longer fits the caches: 70 % -> 85 % of peak at batch 256), and a
    # 384 x NR B micro-panel still streams from L2 at the FMA rate
    kc = 384 if elem_bytes == 4 else 128
    mc = (96 // mr) * mr if mr < 96 else mr
    nc = 256   # the B panel (KC x NC) lives on each worker's stack: 256 KiB for f32 and f64
    return GemmShape(lanes=lanes, mr=mr, nr=nr, kc=kc, mc=mc, nc=nc)


def gemm_wide_shape(features: str, elem_bytes: int) -> GemmShape:
    """Few rows, many columns: the tile for M this small streams B's rows with wide contiguous loads."""
    lanes = vector_bits(features) // (8 * elem_bytes)
    regs = vector_registers(features)
    nv = regs // 4
    mr = max(1, (regs - nv) // (nv + 1))
    return GemmShape(lanes=lanes, mr=mr, nr=nv * lanes, kc=1024, mc=mr, nc=1 << 30)
