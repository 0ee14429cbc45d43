"""Matmul call sites -> GEMM problems: transposes as strides, batch broadcasting, batch folded into M."""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace

from llvmlite import ir

from .config import GemmShape, gemm_shape, gemm_wide_shape
from .epilogue import BiasActivation, Epilogue
from .gemm import GemmProblem, gemm_function
from ..loops import llvm_type
from .operands import BatchShape, Strided, StridedA, StridedB, StridedC


ITEMSIZE = {"f32": 4, "f64": 8, "i8": 1, "u8": 1, "i32": 4, "i64": 8}


def contiguous_strides(shape) -> tuple:
    """Row-major element strides; the leading dimension (maybe the batch symbol) never enters a stride."""
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d if isinstance(d, int) else 1
    return tuple(reversed(out))


def _batch_strides(shape, out_batch) -> tuple:
    """Per output-batch-axis strides of an operand (0 where it is absent or broadcast)."""
    batch, strides = shape[:-2], contiguous_strides(shape)[:-2]
    lead = len(out_batch) - len(batch)
    return tuple(0 if i < lead or batch[i - lead] == 1 else strides[i - lead] for i in range(len(out_batch)))


def _broadcast(a, b) -> tuple:
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + tuple(a), (1,) * (rank - len(b)) + tuple(b)
    return tuple(y if x == 1 else x for x, y in zip(a, b))


def _static(dims) -> int:
    return math.prod(d for d in dims if isinstance(d, int))


def matmul_problem(name, dtype: str, a_shape, b_shape, transpose_a, transpose_b, epi: Epilogue, lanes):
    """Describe `a @ b` (IR matmul semantics) as a GemmProblem."""
    elem = llvm_type(dtype)
    ar, ac = a_shape[-2:]
    br, bc = b_shape[-2:]
    m, k = (ac, ar) if transpose_a else (ar, ac)
    n = br if transpose_b else bc
    a_rs, a_cs = (1, ac) if transpose_a else (ac, 1)
    b_rs, b_cs = (1, bc) if transpose_b else (bc, 1)
    if len(b_shape) == 2 and not transpose_a:
        # every row of every A batch item meets the same B: one tall GEMM over all rows
        rows = a_shape[:-1]
        return GemmProblem(name, elem, BatchShape(), _static(rows), n, k,
                           StridedA(Strided(a_rs, a_cs), BatchShape()),
                           StridedB(Strided(b_rs, b_cs), BatchShape(), lanes),
                           StridedC(Strided(n, 1), BatchShape()), epi,
                           m_per_batch=isinstance(rows[0], str))
    out_batch = _broadcast(a_shape[:-2], b_shape[:-2])
    bs = BatchShape(out_batch)
    c_shape = out_batch + (m, n)
    k_per_batch = isinstance(k, str)  # x^T @ dy of a dense layer contracts over the batch
    return GemmProblem(name, elem, bs, m, n, 1 if k_per_batch else k,
                       StridedA(Strided(a_rs, a_cs, _batch_strides(a_shape, out_batch)), bs),
                       StridedB(Strided(b_rs, b_cs, _batch_strides(b_shape, out_batch)), bs, lanes),
                       StridedC(Strided(n, 1, _batch_strides(c_shape, out_batch)), bs), epi,
                       k_per_batch=k_per_batch)


# L1 data cache: lines of 64 bytes in sets that repeat every 4 KiB, 8 ways (Zen 4; Intel has 12)
L1_SET_SPAN, L1_LINE, L1_WAYS = 4096, 64, 8


def _rows_within_l1_sets(shape: GemmShape, row_bytes: int) -> GemmShape:
    """A shorter tile when the MR rows of an A read in place would share too few L1 sets.

    Rows a multiple of 1 KiB apart map to a few sets: the 24-row tile of a narrow GEMM (N <= one
    vector) over [M, 512] f32 activations touches 24 lines in 2 sets of 8 ways, and each broadcast
    misses L1. Halving MR until the lines fit: MNIST's dense 512->10 at batch 64 16.4 -> 12.9 us."""
    sets = L1_SET_SPAN // math.gcd(row_bytes, L1_SET_SPAN)
    if sets * L1_LINE >= L1_SET_SPAN or shape.nr != shape.lanes:   # (measured on narrow GEMMs only)
        return shape
    mr = shape.mr
    while mr > 1 and sets * L1_WAYS < mr:
        mr //= 2
    return shape if mr == shape.mr else replace(shape, mr=mr, mc=(shape.mc // mr) * mr)


def _columns(b_shape, transpose_b) -> int:
    return b_shape[-2] if transpose_b else b_shape[-1]


def matmul_function(module: ir.Module, features: str, dtype: str, a_shape, b_shape,
                    transpose_a=False, transpose_b=False, epi: Epilogue | None = None,
                    prepacked: bool = False) -> ir.Function:
    """Get or emit `void f(T* a, T* b, T* c, T* epilogue_ptrs..., [T* packed_b,] i64 batch, i64 nthreads)`
    for one matmul; prepacked: B also comes in the panels of passes/f32_prepack.py for this NR."""
    epi = epi or BiasActivation()
    shape = gemm_shape(features, ITEMSIZE[dtype], _columns(b_shape, transpose_b))
    if not transpose_a and not isinstance(a_shape[-1], str):
        shape = _rows_within_l1_sets(shape, a_shape[-1] * ITEMSIZE[dtype])
    key = repr((dtype, tuple(a_shape), tuple(b_shape), transpose_a, transpose_b, epi.ident, shape, prepacked))
    name = f"kc_matmul_{epi.ident}_" + hashlib.sha1(key.encode()).hexdigest()[:12]
    prob = matmul_problem(name, dtype, tuple(a_shape), tuple(b_shape), transpose_a, transpose_b, epi, shape.lanes)
    if prepacked:
        if len(b_shape) != 2 or transpose_a or prob.k_per_batch:
            raise ValueError(f"matmul {list(a_shape)} x {list(b_shape)}: a prepacked B needs a 2-D B and A "
                             "not transposed")
        prob.b_prepacked = True
    return gemm_function(module, prob, shape, gemm_wide_shape(features, ITEMSIZE[dtype]))
