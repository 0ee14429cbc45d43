"""Sparse matmul over the "windows" layout (ir/ops/sparse.py): a GEMV vectorized across the outputs.

Why: at batch 1 an unstructured CSC dot product costs three dependent loads per nonzero (index,
value, input) and a gather is no better on AMD Zen 4 (vgatherdps, about 14 cycles for 16 lanes).
Here each step feeds C = 16 outputs of a panel at once: one vector load of values, one load of
16 u8 window offsets, and the inputs come out of two registers holding the window's G = 32 inputs
with one two-source permute (vpermi2ps), never a memory gather. On the Zen 4 this was measured on,
a 784x512 kernel at 10% density takes about 4.2 us in an artifact against 19 us for the dense GEMV
and 13 us for CSC (one thread), although padding makes the slots about twice the nonzeros.

Per group of rows (sharing each step's loads), the rows are first copied in the layout's input
order into a stack buffer padded with zeros to whole windows, so window loads never leave the
row; per panel, the windows run in order and each window's steps alternate between two
accumulators for a lone row (the FMA latency). Panel sums go to a stack buffer; a last pass adds
the bias, applies relu and stores each to its output column (the layout's output order).
Targets without AVX-512 (or f64, or other window sizes) pick each lane's input with a masked gather
from that buffer instead: correct everywhere, fast only with the permute. The permute reads lane
index & 31, so a PAD slot (255) reads an input times a zero value; the gather clamps PAD to 0.
"""
from __future__ import annotations

from llvmlite import ir

from ..loops import (I32, I64, declare_intrinsic, elem_bytes, entry_alloca, fill, fma, for_range, gep, i64,
                     load_vec, masked_gather, splat, store_vec, zero)
from .config import vector_bits

ROW_GROUPS = (8, 1)      # rows sharing each step's value and index loads (2 input registers + accumulators
                         # each): groups of 8 while they last, then single rows
STACK_BYTES_MAX = 256 * 1024   # the row buffers of a group of 8; beyond, single rows (as passes/sparse_cost.py)
ROW_BYTES_MAX = 1024 * 1024    # one row's buffers: beyond, the kernel is refused (the pass never makes it)
PERMUTE = "llvm.x86.avx512.vpermi2var.ps.512"


def uses_permute(spec) -> bool:
    """Whether `spec` runs on the two-register permute (else the gather fallback)."""
    return vector_bits(spec.features) == 512 and spec.dtype == "f32" and tuple(spec.block) == (32, 16)


def windows_rows(b: ir.IRBuilder, spec, elem, fn: ir.Function, epilogue) -> None:
    """Emit the body of the rows function `fn` (a, values, index, offsets, y, [bias], rows, nthreads);
    epilogue(b, acc, bias, relu) applies the bias and relu in registers (kernels/sparse.py)."""
    _Windows(b, spec, elem, fn, epilogue).emit()


class _Windows:
    """The float kernel; kernels/sparse_int8.py's subclass changes the arithmetic (the hooks below)."""

    def __init__(self, b, spec, elem, fn, epilogue):
        self.b, self.spec, self.elem, self.epilogue = b, spec, elem, epilogue
        self.xelem = self.acc_elem = elem           # the row buffer's and the sums' element types
        args = {a.name: a for a in fn.args}
        self.args = args
        self.a, self.values, self.index, self.offsets, self.y = (args[n] for n in ("a", "values", "index",
                                                                                   "offsets", "y"))
        self.bias, self.rows = args.get("bias"), args["rows"]
        self.g, self.c = spec.block[:2]
        self.slots = self.c * (spec.block[2] if len(spec.block) > 2 else 1)   # values per step
        self.nwin, self.npan = -(-spec.k // self.g), -(-spec.n // self.c)
        self.stride = self.nwin * self.g            # a padded row in the input buffer
        self.permute = uses_permute(spec)
        first = self.nwin * self.npan + 1           # the input and output orders follow the step offsets
        self.order_in, self.order_out = gep(b, self.offsets, first), gep(b, self.offsets, first + spec.k)

    def emit(self):
        b, s = self.b, self.spec
        row_bytes = self.stride * elem_bytes(self.xelem) + self.npan * self.c * elem_bytes(self.acc_elem)
        if row_bytes > ROW_BYTES_MAX:
            raise NotImplementedError(f"sparse_matmul windows: a {s.k}x{s.n} kernel needs {row_bytes:,} bytes of stack "
                                      f"per row (at most {ROW_BYTES_MAX:,}); store it in the blocks layout")
        groups = ROW_GROUPS if ROW_GROUPS[0] * row_bytes <= STACK_BYTES_MAX else (1,)
        most = groups[0]
        self.xbuf = entry_alloca(b, self.xelem, most * self.stride)
        self.ybuf = entry_alloca(b, self.acc_elem, most * self.npan * self.c)
        if self.stride > s.k:  # the padding after each row stays zero: rows are copied over [0, K) only
            for r in range(most):
                fill(b, gep(b, self.xbuf, r * self.stride + s.k), self.stride - s.k, self.padding())
        done = i64(0)
        for size in groups:
            end = b.mul(b.sdiv(self.rows, i64(size)), i64(size)) if size > 1 else self.rows
            with for_range(b, done, end, size, name=f"wrows{size}") as r0:
                self.row_group(r0, size)
            done = b.select(b.icmp_signed(">", end, done), end, done)

    def row_group(self, r0, nrows: int):
        b, s = self.b, self.spec
        for r in range(nrows):
            src, dst = gep(b, self.a, b.mul(b.add(r0, i64(r)), i64(s.k))), gep(b, self.xbuf, r * self.stride)
            with for_range(b, 0, s.k, name="wcopy") as q:
                b.store(self.convert(b.load(gep(b, src, b.sext(b.load(gep(b, self.order_in, q)), I64)))),
                        gep(b, dst, q))
        with for_range(b, 0, self.npan, name="panel") as p:
            self.panel(nrows, p)
        for r in range(nrows):
            self.store_row(b.add(r0, i64(r)), gep(b, self.ybuf, r * self.npan * self.c))

    def store_row(self, row, sums):
        """y[row, order_out[j]] = act(sums[j] + bias[order_out[j]]) for the N outputs."""
        b, s = self.b, self.spec
        out = gep(b, self.y, b.mul(row, i64(s.n)))
        with for_range(b, 0, s.n, name="wout") as j:
            col = b.sext(b.load(gep(b, self.order_out, j)), I64)
            bias = None if self.bias is None else b.load(gep(b, self.bias, col))
            b.store(self.epilogue(b, b.load(gep(b, sums, j)), bias, s.relu), gep(b, out, col))

    def panel(self, nrows: int, p):
        """The sums of panel p for the group's rows, into the output buffer."""
        b, c = self.b, self.c
        vty = ir.VectorType(self.acc_elem, c)
        # a lone row alternates two accumulators to hide the FMA latency; in a group the rows do
        chains = 2 if nrows < 4 else 1
        accs = [[entry_alloca(b, vty, name=f"wacc{r}_{u}") for u in range(chains)] for r in range(nrows)]
        for row in accs:
            for a in row:
                b.store(zero(vty), a)
        with for_range(b, 0, self.nwin, name="win") as w:
            self.window(nrows, b.add(b.mul(p, i64(self.nwin)), w), b.mul(w, i64(self.g)), accs)
        for r in range(nrows):
            total = b.load(accs[r][0])
            for acc in accs[r][1:]:
                total = self.add(total, b.load(acc))
            store_vec(b, total, gep(b, self.ybuf, b.add(i64(r * self.npan * c), b.mul(p, i64(c)))))

    def window(self, nrows: int, group, first, accs):
        """The steps of one (panel, window) group, alternating between each row's two accumulators."""
        b = self.b
        xs = [gep(b, self.xbuf, b.add(i64(r * self.stride), first)) for r in range(nrows)]
        half = self.g // 2                          # the permute's two source registers
        regs = [(load_vec(b, x, half), load_vec(b, gep(b, x, half), half)) for x in xs] if self.permute else xs
        start = b.sext(b.load(gep(b, self.offsets, group)), I64)
        end = b.sext(b.load(gep(b, self.offsets, b.add(group, i64(1)))), I64)
        pairs = b.add(start, b.mul(b.sdiv(b.sub(end, start), i64(2)), i64(2)))
        with for_range(b, start, pairs, 2, name="wstep") as t:
            for u in range(2):
                self.step(b.add(t, i64(u)), regs, [row[u % len(row)] for row in accs])
        with b.if_then(b.icmp_signed("<", pairs, end)):
            self.step(pairs, regs, [row[0] for row in accs])

    def step(self, t, regs, accs):
        b = self.b
        at = b.mul(t, i64(self.slots))
        idx = load_vec(b, gep(b, self.index, at), self.slots)
        v = self.load_values(gep(b, self.values, at), idx)
        for reg, acc in zip(regs, accs):
            b.store(self.madd(v, self.inputs(reg, idx), b.load(acc)), acc)

    # -- the arithmetic (float here) ----------------------------------------------------------
    def padding(self):
        """What the row buffer holds past K (a slot there has no weight: a zero does)."""
        return zero(self.xelem)

    def convert(self, x):
        """An input as the row buffer holds it."""
        return x

    def load_values(self, ptr, idx):
        """A step's values (idx: its u8 offsets)."""
        return load_vec(self.b, ptr, self.slots)

    def madd(self, values, inputs, acc):
        return fma(self.b, values, inputs, acc)

    def add(self, x, y):
        return self.b.fadd(x, y)

    def permute_inputs(self, lo, idx, hi):
        """The two-register permute: [lo, hi][idx[lane]] (idx: zero-extended u8 offsets)."""
        b = self.b
        vf = ir.VectorType(self.elem, 16)
        fn = declare_intrinsic(b.module, PERMUTE, vf, [vf, ir.VectorType(I32, 16), vf])
        return b.call(fn, [lo, b.zext(idx, ir.VectorType(I32, 16)), hi])

    def inputs(self, reg, idx):
        """Each slot's input: window[idx[slot]] (zero-extended u8 offsets)."""
        b, c = self.b, self.slots
        if self.permute:
            return self.permute_inputs(reg[0], idx, reg[1])
        wide = b.zext(idx, ir.VectorType(I64, c))
        inside = b.icmp_unsigned("<", wide, splat(b, i64(self.g), c))   # PAD reads the window's first input
        safe = b.select(inside, wide, zero(wide.type))
        return masked_gather(b, reg, safe, ir.Constant(ir.VectorType(ir.IntType(1), c), [1] * c), c)

