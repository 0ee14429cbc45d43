"""Sparse int8 matmul kernel: sparse_qmatmul (ir/ops/sparse_int8.py) over the "windows" layout.

    void f(i8* a, i8* values, i8* index, i32* offsets, i8* a_zp, T* y, [out ptrs...,] i64 rows, i64 nthreads)

It is the float windows kernel (kernels/sparse_windows.py) with integer arithmetic. Each row is
copied once, in the layout's input order, as 16-bit a - a_zp (exact: -255..255). A step of the
(64, 16, 2) layout holds two int8 values per output lane: 32 16-bit products, summed in pairs into
the 16 i32 accumulator lanes (vpmaddwd; a pair is at most 2 * 255 * 128 in magnitude, exact), and a
window's 64 inputs sit in two 32 x i16 registers from which one vpermi2w (AVX512BW) picks each
slot's input (an empty slot, index PAD, counts zero). The i32 sums wrap modulo 2^32 like
matmul_integer's, so their order does not matter:
the result equals the reference bit for bit. Then the dense int8 GEMM's epilogue
(kernels/int8_microkernel.py: StoreI32, or Requantize: i32 bias, f32 multiplier, round half to
even, zero point, relu clamp, with the same f32 steps as ir/ops/quant.py), one output at a time in
the layout's output order. Without AVX512BW the inputs come by masked gather and the product pairs
from generic vector code: exact everywhere, fast only with the permute (passes/sparse_cost.py
then keeps the dense int8 kernel).
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from kcompile.ir.ops.sparse import PAD

from ..loops import (I8, I32, I64, ceil_div, declare_intrinsic, for_range, gep, i64, imin, internal_function, splat,
                     zero)
from ..threads import parallel_function
from .int8_microkernel import StoreI32
from .quantmath import F32, bounds, round_saturate, zero_point_f32
from .sparse_windows import _Windows

I16 = ir.IntType(16)
BLOCK = (64, 16, 2)          # windows of 64 inputs, panels of 16 outputs, 2 slots per output per step
ROWS_PER_TASK = 64           # rows per thread-pool task (8 of the windows kernel's groups of 8 rows)
PERMUTE = "llvm.x86.avx512.vpermi2var.hi.512"
PMADDWD = "llvm.x86.avx512.pmaddw.d.512"


def uses_permute(features: str, block=BLOCK) -> bool:
    """Whether the kernel runs on vpermi2w and vpmaddwd (else gathers and generic vector code)."""
    return "+avx512bw" in features.split(",") and tuple(block) == BLOCK


def kernel_name(a_dtype: str, k: int, n: int, block, out, features: str) -> str:
    key = (a_dtype, k, n, tuple(block), out.ident, features)
    return "kc_sparse_qmatmul_" + hashlib.sha1(repr(key).encode()).hexdigest()[:12]


def sparse_qmatmul_function(module: ir.Module, a_dtype: str, k: int, n: int, block, out=None,
                            features: str = "") -> ir.Function:
    """Get or emit the kernel (signature above); out: StoreI32() or a Requantize epilogue."""
    out = out or StoreI32()
    name = kernel_name(a_dtype, k, n, block, out, features)
    if name in module.globals:
        return module.globals[name]
    p8 = I8.as_pointer()
    ptrs = [p8, p8, p8, I32.as_pointer(), p8, out.elem.as_pointer()] + out.ptr_types()
    names = ["a", "values", "index", "offsets", "azp", "y"] + [f"o{i}" for i in range(out.nptrs)] + ["rows", "nthreads"]
    rows_fn = internal_function(module, name + ".rows", ir.VoidType(), ptrs + [I64, I64], names)
    b = ir.IRBuilder(rows_fn.append_basic_block("entry"))
    _Int8Windows(b, _Spec(a_dtype, k, n, tuple(block), features), rows_fn, out).emit()
    b.ret_void()

    def task(b, t, args, rows):
        """Rows t*ROWS_PER_TASK .. on offset pointers."""
        first = b.mul(t, i64(ROWS_PER_TASK))
        count = imin(b, i64(ROWS_PER_TASK), b.sub(rows, first))
        a, y = gep(b, args[0], b.mul(first, i64(k))), gep(b, args[5], b.mul(first, i64(n)))
        b.call(rows_fn, [a, *args[1:5], y, *args[6:], count, i64(1)])

    return parallel_function(module, name, ptrs, lambda b, rows: ceil_div(b, rows, ROWS_PER_TASK), task,
                             work=lambda b, rows: rows, grain=ROWS_PER_TASK)


class _Spec:
    """What _Windows reads of a spec."""

    def __init__(self, a_dtype, k, n, block, features):
        self.dtype, self.k, self.n, self.block, self.features, self.relu = a_dtype, k, n, block, features, False


class _Int8Windows(_Windows):
    def __init__(self, b, spec: _Spec, fn, out):
        super().__init__(b, spec, I16, fn, None)
        self.xelem, self.acc_elem = I16, I32
        self.out = out
        self.permute = uses_permute(spec.features, spec.block)
        self.ext = b.zext if spec.dtype == "u8" else b.sext
        self.azp = self.ext(b.load(self.args["azp"]), I32)
        extra = [self.args[f"o{i}"] for i in range(out.nptrs)]
        if out.nptrs:   # Requantize: [bias,] multiplier, zero point; the zero point and bounds read once
            *self.qbias, self.qmult, zp = extra
            self.zpf = zero_point_f32(b, b.load(zp), out.out_dtype)
            self.lo, self.hi = bounds(b, self.zpf, out.out_dtype, out.relu)

    def convert(self, x):
        b = self.b
        return b.trunc(b.sub(self.ext(x, I32), self.azp), I16)

    def load_values(self, ptr, idx):
        """The step's values as 16 bits, zero in empty slots (index PAD: whatever value a caller stored
        there, the reference skips the slot)."""
        b = self.b
        v = b.sext(b.load(b.bitcast(ptr, ir.VectorType(I8, self.slots).as_pointer()), align=1),
                   ir.VectorType(I16, self.slots))
        return b.select(b.icmp_unsigned("==", idx, splat(b, ir.Constant(I8, PAD), self.slots)), zero(v.type), v)

    def madd(self, values, inputs, acc):
        """acc + the products summed in pairs (slots 2l, 2l+1 -> lane l)."""
        b, c = self.b, self.c
        if self.permute:
            v16 = ir.VectorType(I16, 32)
            fn = declare_intrinsic(b.module, PMADDWD, ir.VectorType(I32, 16), [v16, v16])
            return b.add(acc, b.call(fn, [values, inputs]))
        wide = ir.VectorType(I32, self.slots)
        prod = b.mul(b.sext(values, wide), b.sext(inputs, wide))
        even, odd = (b.shuffle_vector(prod, prod, ir.Constant(ir.VectorType(I32, c), list(range(r, 2 * c, 2))))
                     for r in (0, 1))
        return b.add(acc, b.add(even, odd))

    def add(self, x, y):
        return self.b.add(x, y)

    def permute_inputs(self, lo, idx, hi):
        b = self.b
        v16 = ir.VectorType(I16, 32)
        fn = declare_intrinsic(b.module, PERMUTE, v16, [v16, v16, v16])
        return b.call(fn, [lo, b.zext(idx, v16), hi])

    def store_row(self, row, sums):
        """y[row, order_out[j]] = the epilogue of sums[j], for the N outputs."""
        b, n = self.b, self.spec.n
        out_row = gep(b, self.y, b.mul(row, i64(n)))
        with for_range(b, 0, n, name="qout") as j:
            col = b.sext(b.load(gep(b, self.order_out, j)), I64)
            b.store(self.finish(b.load(gep(b, sums, j)), col), gep(b, out_row, col))

    def finish(self, acc, col):
        """The i32 sum of output col as the dense GEMM's epilogue writes it."""
        b, out = self.b, self.out
        if not out.nptrs:
            return acc
        if out.bias:
            acc = b.add(acc, b.load(gep(b, self.qbias[0], col)))
        m = b.load(gep(b, self.qmult, col if out.per_col else i64(0)))
        return round_saturate(b, b.fmul(b.sitofp(acc, F32), m), self.zpf, self.lo, self.hi)
