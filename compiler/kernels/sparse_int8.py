"""Sparse int8 matmul kernel: sparse_qmatmul (ir/ops/sparse_int8.py) over the "windows" layout.

    void f(i8* a, i8* values, i8* index, i32* offsets, i8* a_zp, T* y, [out ptrs...,] i64 rows, i64 nthreads)

It is the float windows kernel (kernels/sparse_windows.py) with the dense int8 GEMM's arithmetic.
Each row is copied once, in the layout's input order, as unsigned bytes (an i8 input is offset by
128, its zero point too). A step of the (128, 16, 4) layout holds four int8 values per output lane:
one vpermi2b (AVX512_VBMI) picks the 64 slots' inputs out of the window's 128 bytes held in two
registers, one vpdpbusd (AVX512_VNNI) multiplies them by the values and adds each lane's four
products into its i32 accumulator. The zero point comes off at the end, as in the dense GEMM:
sum (a - zp) w = sum a w - zp * sum w, with each output's sum of weights accumulated beside the
rows from the same steps (the row buffer past K holds the zero point, so slots there count zero; an
empty slot, index PAD, has its value zeroed whatever a caller stored). Everything wraps modulo 2^32
like matmul_integer's i32, so the order of the sums does not matter: the result equals the
reference bit for bit. Then the dense GEMM's epilogue (kernels/int8_microkernel.py: StoreI32, or
Requantize: i32 bias, f32 multiplier, round half to even, zero point, relu clamp, the f32 steps of
ir/ops/quant.py), 16 outputs at a time in the layout's output order. Without VBMI and VNNI the
inputs come by masked gather and the products from generic vector code: exact everywhere, fast only
with the permute (passes/sparse_cost.py then keeps the dense int8 kernel).
"""
from __future__ import annotations

import hashlib

from llvmlite import ir

from kcompile.ir.ops.sparse import PAD

from ..loops import (I8, I32, I64, ceil_div, declare_intrinsic, entry_alloca, fill, for_range, gep, i64, imin,
                     internal_function, load_vec, splat, store_vec, zero)
from ..threads import parallel_function
from .int8_microkernel import StoreI32
from .quantmath import F32, bounds, round_saturate, zero_point_f32
from .sparse_windows import _Windows

BLOCK = (128, 16, 4)         # windows of 128 inputs, panels of 16 outputs, 4 slots per output per step
ROWS_PER_TASK = 64           # rows per thread-pool task (8 of the windows kernel's groups of 8 rows)
PERMUTE = "llvm.x86.avx512.vpermi2var.qi.512"
DPBUSD = "llvm.x86.avx512.vpdpbusd.512"


def uses_permute(features: str, block=BLOCK) -> bool:
    """Whether the kernel runs on vpermi2b and vpdpbusd (else gathers and generic vector code)."""
    have = features.split(",")
    return "+avx512vbmi" in have and "+avx512vnni" in have and tuple(block) == BLOCK


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
        super().__init__(b, spec, I8, fn, None)
        self.xelem, self.acc_elem = I8, I32
        self.out = out
        self.permute = uses_permute(spec.features, spec.block)
        raw = b.load(self.args["azp"])
        # unsigned bytes: an i8 input and its zero point move up by 128 (their difference stays)
        self.flip = spec.dtype == "i8"
        self.azp = b.add(b.sext(raw, I32), ir.Constant(I32, 128)) if self.flip else b.zext(raw, I32)
        extra = [self.args[f"o{i}"] for i in range(out.nptrs)]
        if out.nptrs:   # Requantize: [bias,] multiplier, zero point; the zero point and bounds read once
            *self.qbias, self.qmult, zp = extra
            self.zpf = zero_point_f32(b, b.load(zp), out.out_dtype)
            self.lo, self.hi = bounds(b, self.zpf, out.out_dtype, out.relu)

    def emit(self):
        b, c = self.b, self.c
        self.csum = entry_alloca(b, I32, self.npan * c)         # the panel's sums of weights, per output
        self.csum_acc = entry_alloca(b, ir.VectorType(I32, c), name="csum")
        if self.out.nptrs:
            self.permuted_epilogue()
        super().emit()

    def panel(self, nrows: int, p):
        """The panel's sums (_Windows.panel), and its outputs' sums of weights beside them: one more
        vpdpbusd chain per step, on ones, shared by the group's rows."""
        b, c = self.b, self.c
        b.store(zero(self.csum_acc.type.pointee), self.csum_acc)
        super().panel(nrows, p)
        store_vec(b, b.load(self.csum_acc), gep(b, self.csum, b.mul(p, i64(c))))

    def padding(self):
        return self.b.trunc(self.azp, I8)

    def convert(self, x):
        return self.b.xor(x, ir.Constant(I8, 0x80)) if self.flip else x

    def load_values(self, ptr, idx):
        """The step's values, zero in empty slots (index PAD: whatever value a caller stored there, the
        reference skips the slot), added into the panel's sums of weights."""
        b = self.b
        v = load_vec(b, ptr, self.slots)
        v = b.select(b.icmp_unsigned("==", idx, splat(b, ir.Constant(I8, PAD), self.slots)), zero(v.type), v)
        ones = ir.Constant(ir.VectorType(I8, self.slots), [1] * self.slots)
        b.store(self.madd(v, ones, b.load(self.csum_acc)), self.csum_acc)      # (once per step)
        return v

    def madd(self, values, inputs, acc):
        """acc + each lane's sum of its P products of unsigned inputs and signed values."""
        b, c, p = self.b, self.c, self.slots // self.c
        if self.permute:
            words = ir.VectorType(I32, c)
            fn = declare_intrinsic(b.module, DPBUSD, words, [words] * 3)
            return b.call(fn, [acc, b.bitcast(inputs, words), b.bitcast(values, words)])
        wide = ir.VectorType(I32, self.slots)
        prod = b.mul(b.zext(inputs, wide), b.sext(values, wide))
        for r in range(p):
            acc = b.add(acc, b.shuffle_vector(prod, prod, ir.Constant(ir.VectorType(I32, c),
                                                                       list(range(r, p * c, p)))))
        return acc

    def add(self, x, y):
        return self.b.add(x, y)

    def permute_inputs(self, lo, idx, hi):
        b = self.b
        v8 = ir.VectorType(I8, 64)
        return b.call(declare_intrinsic(b.module, PERMUTE, v8, [v8, v8, v8]), [lo, idx, hi])

    def permuted_epilogue(self):
        """Each output's bias and multiplier in the panel order (0 past N), gathered once per call so
        the epilogue runs on vectors."""
        b, out, n, width = self.b, self.out, self.spec.n, self.npan * self.c
        self.pbias, self.pmult = entry_alloca(b, I32, width), entry_alloca(b, F32, width)
        fill(b, gep(b, self.pbias, i64(n)), width - n, ir.Constant(I32, 0))
        fill(b, gep(b, self.pmult, i64(n)), width - n, ir.Constant(F32, 0.0))
        with for_range(b, 0, n, name="qperm") as j:
            col = b.sext(b.load(gep(b, self.order_out, j)), I64)
            bias = b.load(gep(b, self.qbias[0], col)) if out.bias else ir.Constant(I32, 0)
            b.store(bias, gep(b, self.pbias, j))
            b.store(b.load(gep(b, self.qmult, col if out.per_col else i64(0))), gep(b, self.pmult, j))

    def store_row(self, row, sums):
        """y[row, order_out[j]] = the epilogue of sums[j] for the N outputs, a panel's at a time."""
        b, n, c = self.b, self.spec.n, self.c
        out_row = gep(b, self.y, b.mul(row, i64(n)))
        with for_range(b, 0, n // c, name="qout") as p:
            self.store_panel(out_row, sums, b.mul(p, i64(c)), c)
        if n % c:
            self.store_panel(out_row, sums, i64(n - n % c), n % c)

    def store_panel(self, out_row, sums, j0, lanes: int):
        """Outputs j0 .. j0 + lanes (panel order): the dense GEMM's epilogue on one vector of sums minus
        the zero point's share, then each result to its output column."""
        b, out, c = self.b, self.out, self.c
        acc = b.sub(load_vec(b, gep(b, sums, j0), c),
                    b.mul(splat(b, self.azp, c), load_vec(b, gep(b, self.csum, j0), c)))
        if out.nptrs:
            acc = b.add(acc, load_vec(b, gep(b, self.pbias, j0), c))
            r = b.fmul(b.sitofp(acc, ir.VectorType(F32, c)), load_vec(b, gep(b, self.pmult, j0), c))
            acc = round_saturate(b, r, *(splat(b, v, c) for v in (self.zpf, self.lo, self.hi)))
        for lane in range(lanes):
            col = b.sext(b.load(gep(b, self.order_out, b.add(j0, i64(lane)))), I64)
            b.store(b.extract_element(acc, i64(lane)), gep(b, out_row, col))
