"""Sparse matmul kernels: y = a @ W for a kernel W stored as nonzero blocks (ir/ops/sparse.py).

    void f(T* a, T* values, i32* index, i32* offsets, T* y, [T* bias,] i64 rows, i64 nthreads)

a is [rows, K] and y [rows, N], row-major. Layout "windows" (ir/ops/sparse.py) runs the kernel of
kernels/sparse_windows.py (index: u8); the block layout one of two kernels, by the block shape (bk, bn):

- column kernel (bn == 1: unstructured CSC, or bk x 1 blocks): each output is a dot product over
  its stored blocks. Full tiles of `lanes` rows are vectorized across the batch: the tile is
  transposed into a [K, lanes] stack buffer once, then every stored value meets a whole vector
  of rows (one broadcast, one load, one FMA); PARTIAL_TILE_MIN or more rows left over share one
  zero-padded tile. Fewer rows left over (batch 1, say) take the GEMV path: a dot product over
  the column's stored blocks in UNROLL independent accumulators, bk inputs per block (scalars
  for bk == 1: on the AMD Zen 4 this was tuned on, scalar loads through the index beat
  vgatherdps, 14 us against 19 us for a 784x512 kernel at 10% density; the windows layout's
  permute does it in about 4 us, which is why the sparsify pass prefers it on AVX-512).
- block kernel (bn > 1: blocks along the outputs): each stored block row is bn contiguous
  outputs, so the vectors run across the block; MR rows share each loaded block (register
  blocking as in the GEMM micro-kernel).

Rows run in tasks of TASK_TILES tiles on compiler/threads.py's pool (batch 64 with 16 lanes is
one task, on the calling thread). The bias + relu epilogue is applied in registers before the
single store (epilogue()). Index
arrays are trusted: the sparsify pass builds them, and every path that lets other values in
(the reference, the runtime's set_weights, the JIT) checks them with ir.ops.sparse.check_structure.
The vector width comes from the target's features (config.vector_bits), never a constant.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from llvmlite import ir

from ..loops import (I8, I32, I64, ceil_div, elem_bytes, entry_alloca, fma, for_range, gep, hreduce, i64, imin,
                     internal_function, lane_mask, llvm_type, load_vec, masked_store, splat, store_vec, zero)
from ..threads import parallel_function
from .config import vector_bits, vector_registers
from .sparse_windows import windows_rows
from .transpose_tile import transpose_function

TILE_BYTES_MAX = 512 * 1024  # the column kernel's transposed tile lives on the stack; beyond this, GEMV rows only
UNROLL = 4                   # independent accumulators per dot product (hides the FMA latency)
TASK_TILES = 4               # batch tiles per thread-pool task
REGISTER_TRANSPOSE_LANES = (8, 16)   # f32 tiles transposed in registers (others element by element)
PARTIAL_TILE_MIN = 4         # leftover rows that share one zero-padded tile: a quarter of 16 lanes (a
                             # tile cost 2.5-5 GEMV rows, measured; as passes/sparse_cost.py counts)


@dataclass(frozen=True)
class SparseSpec:
    """One kernel variant: element type, K, N, block, epilogue (bias, relu) and the target features."""

    dtype: str
    k: int
    n: int
    block: tuple
    bias: bool
    relu: bool
    features: str
    layout: str = "blocks"   # or "windows" (kernels/sparse_windows.py)

    @property
    def name(self) -> str:
        return "kc_sparse_matmul_" + hashlib.sha1(repr(self).encode()).hexdigest()[:12]


def sparse_matmul_function(module: ir.Module, spec: SparseSpec) -> ir.Function:
    """Get or emit the kernel of `spec` (see the module docstring for its signature).

    Rows split into tasks of TASK_TILES batch tiles run on the thread pool (compiler/threads.py);
    up to one task's rows (batch 64 with 16 lanes) stay on the calling thread."""
    if spec.name in module.globals:
        return module.globals[spec.name]
    elem = llvm_type(spec.dtype)
    ptr = elem.as_pointer()
    index = (I8 if spec.layout == "windows" else I32).as_pointer()
    ptrs = [ptr, ptr, index, I32.as_pointer(), ptr] + ([ptr] if spec.bias else [])
    names = ["a", "values", "index", "offsets", "y"] + (["bias"] if spec.bias else []) + ["rows", "nthreads"]
    rows_fn = internal_function(module, spec.name + ".rows", ir.VoidType(), ptrs + [I64, I64], names)
    b = ir.IRBuilder(rows_fn.append_basic_block("entry"))
    k = _Kernel(b, spec, elem, rows_fn)
    if spec.layout == "windows":
        windows_rows(b, spec, elem, rows_fn, epilogue)
    else:
        (k.column_kernel if spec.block[1] == 1 else k.block_kernel)()
    b.ret_void()
    per_task = TASK_TILES * k.lanes

    def task(b, t, args, rows):
        """Rows t*per_task .. min(rows, (t+1)*per_task): the row kernel on offset pointers."""
        first = b.mul(t, i64(per_task))
        count = imin(b, i64(per_task), b.sub(rows, first))
        a, y = gep(b, args[0], b.mul(first, i64(spec.k))), gep(b, args[4], b.mul(first, i64(spec.n)))
        b.call(rows_fn, [a, *args[1:4], y, *args[5:], count, i64(1)])

    return parallel_function(module, spec.name, ptrs, lambda b, rows: ceil_div(b, rows, per_task), task,
                             work=lambda b, rows: rows, grain=per_task)


def epilogue(b: ir.IRBuilder, acc, bias, use_relu: bool):
    """act(acc + bias): bias is a value shaped like acc (a splat or a loaded vector), or None."""
    if bias is not None:
        acc = b.fadd(acc, bias)
    if not use_relu:
        return acc
    z = zero(acc.type)  # max(acc, 0) that keeps NaN, as np.maximum (and kernels/epilogue.relu) do
    return b.select(b.fcmp_unordered(">", acc, z), acc, z)


class _Kernel:
    def __init__(self, b, spec: SparseSpec, elem, fn):
        self.b, self.spec, self.elem = b, spec, elem
        args = dict(zip([a.name for a in fn.args], fn.args))
        self.a, self.values, self.index, self.offsets, self.y = (args[n] for n in ("a", "values", "index",
                                                                                   "offsets", "y"))
        self.bias, self.rows = args.get("bias"), args["rows"]
        self.lanes = max(1, vector_bits(spec.features) // (8 * elem_bytes(elem)))
        self.regs = vector_registers(spec.features)
        self.sums = None          # the column kernel's [N, lanes] output tile, where it transposes outputs

    # -- shared pieces ---------------------------------------------------------------------
    def column_range(self, j):
        b = self.b
        start = b.sext(b.load(gep(b, self.offsets, j)), I64)
        return start, b.sext(b.load(gep(b, self.offsets, b.add(j, i64(1)))), I64)

    def block_row(self, p):
        """First element row of stored block p (index[p] * bk)."""
        b = self.b
        return b.mul(b.sext(b.load(gep(b, self.index, p)), I64), i64(self.spec.block[0]))

    def accumulate(self, start, end, width, step_fn):
        """sum over p in [start, end) of step_fn(p, acc) in UNROLL independent accumulators."""
        b = self.b
        vty = ir.VectorType(self.elem, width)
        accs = [entry_alloca(b, vty, name=f"acc{u}") for u in range(UNROLL)]
        for a in accs:
            b.store(zero(vty), a)
        count = b.sub(end, start)
        main = b.add(start, b.mul(b.sdiv(count, i64(UNROLL)), i64(UNROLL)))
        with for_range(b, start, main, UNROLL, name="p4") as p:
            for u, a in enumerate(accs):
                b.store(step_fn(b.add(p, i64(u)), b.load(a)), a)
        with for_range(b, main, end, name="pt") as p:
            b.store(step_fn(p, b.load(accs[0])), accs[0])
        total = b.load(accs[0])
        for a in accs[1:]:
            total = b.fadd(total, b.load(a))
        return total

    def bias_splat(self, j, width):
        return None if self.bias is None else splat(self.b, self.b.load(gep(self.b, self.bias, j)), width)

    # -- column kernel (bn == 1) -------------------------------------------------------------
    def column_kernel(self):
        b, s, t = self.b, self.spec, self.lanes
        first_row = i64(0)
        if t > 1 and s.k * t * elem_bytes(self.elem) <= TILE_BYTES_MAX:
            full = b.mul(b.sdiv(self.rows, i64(t)), i64(t))
            tile = entry_alloca(b, self.elem, s.k * t)
            registers = self.elem == ir.FloatType() and t in REGISTER_TRANSPOSE_LANES
            # the tile's sums as [N, lanes] vectors, transposed into y's rows at the end: stored lane by
            # lane they were one scattered store per output and row (a 16-row tile of 1024 outputs: 64 KB of lines)
            self.sums = entry_alloca(b, self.elem, s.n * t) if registers and s.n * t * 4 <= TILE_BYTES_MAX else None
            with for_range(b, 0, full, t, name="tile") as r0:
                self.tile_rows(tile, r0, None)
            partial = b.icmp_signed(">=", b.sub(self.rows, full), i64(min(PARTIAL_TILE_MIN, t // 2)))
            with b.if_then(partial):
                self.tile_rows(tile, full, b.sub(self.rows, full))
            first_row = b.select(partial, self.rows, full)
        with for_range(b, first_row, self.rows, name="row") as r:
            with for_range(b, 0, s.n, name="col") as j:
                self.column_row(r, j)

    def tile_rows(self, tile, r0, valid):
        """Rows r0 .. r0 + lanes (or + valid, the rest zero-filled) through the transposed tile."""
        b, s, t = self.b, self.spec, self.lanes
        nrows = i64(t) if valid is None else valid
        if self.elem == ir.FloatType() and t in REGISTER_TRANSPOSE_LANES:
            # lanes x lanes register tiles (kernels/transpose_tile.py): element by element, the strided
            # copy was 75 % of a 16-row tile's time on a 288x64 kernel at 10 % (0.56 ns an element)
            b.call(transpose_function(b.module, t), [tile, gep(b, self.a, b.mul(r0, i64(s.k))), i64(t), i64(s.k),
                                                     nrows, i64(s.k)])
        else:
            with for_range(b, 0, nrows, name="tl") as lane:
                src = gep(b, self.a, b.mul(b.add(r0, lane), i64(s.k)))
                with for_range(b, 0, s.k, name="tk") as kk:
                    b.store(b.load(gep(b, src, kk)), gep(b, tile, b.add(b.mul(kk, i64(t)), lane)))
        if valid is not None:   # lanes valid..t of every tile row zero (one masked vector store each)
            unused = b.not_(lane_mask(b, valid, t))
            with for_range(b, 0, s.k, name="tzk") as kk:
                masked_store(b, zero(ir.VectorType(self.elem, t)), gep(b, tile, b.mul(kk, i64(t))), unused)
        with for_range(b, 0, s.n, name="col") as j:
            self.column_tile(tile, r0, j, valid)
        if self.sums is not None:
            b.call(transpose_function(b.module, t), [gep(b, self.y, b.mul(r0, i64(s.n))), self.sums, i64(s.n), i64(t),
                                                     i64(s.n), nrows])

    def column_tile(self, tile, r0, j, valid):
        """y[r0 : r0 + lanes (or + valid), j]: rows in the vector lanes."""
        b, s, t = self.b, self.spec, self.lanes
        bk = s.block[0]

        def step(p, acc):
            row = self.block_row(p)
            for i in range(bk):
                w = b.load(gep(b, self.values, b.add(b.mul(p, i64(bk)), i64(i))))
                x = load_vec(b, gep(b, tile, b.mul(b.add(row, i64(i)), i64(t))), t)
                acc = fma(b, splat(b, w, t), x, acc)
            return acc

        acc = epilogue(b, self.accumulate(*self.column_range(j), t, step), self.bias_splat(j, t), s.relu)
        if self.sums is not None:
            store_vec(b, acc, gep(b, self.sums, b.mul(j, i64(t))))
            return
        for lane in range(t):
            out = gep(b, self.y, b.add(b.mul(b.add(r0, i64(lane)), i64(s.n)), j))
            if valid is None:
                b.store(b.extract_element(acc, i64(lane)), out)
            else:
                with b.if_then(b.icmp_signed("<", i64(lane), valid)):
                    b.store(b.extract_element(acc, i64(lane)), out)

    def column_row(self, r, j):
        """y[r, j] for one row: a dot product over the column's blocks, bk inputs at a time."""
        b, s = self.b, self.spec
        bk = s.block[0]
        x_row = gep(b, self.a, b.mul(r, i64(s.k)))
        start, end = self.column_range(j)

        def step(p, acc):  # one stored block: bk consecutive inputs times bk values
            x = load_vec(b, gep(b, x_row, self.block_row(p)), bk)
            return fma(b, load_vec(b, gep(b, self.values, b.mul(p, i64(bk))), bk), x, acc)
        acc = self.accumulate(start, end, bk, step)
        acc = hreduce(b, acc, lambda bb, x, y: bb.fadd(x, y)) if isinstance(acc.type, ir.VectorType) else acc
        bias = None if self.bias is None else b.load(gep(b, self.bias, j))
        b.store(epilogue(b, acc, bias, s.relu), gep(b, self.y, b.add(b.mul(r, i64(s.n)), j)))

    # -- block kernel (bn > 1) ---------------------------------------------------------------
    def block_kernel(self):
        b = self.b
        chunks = self.chunks()
        mr = max(1, min(6, (self.regs - len(chunks) - 1) // len(chunks)))
        full = b.mul(b.sdiv(self.rows, i64(mr)), i64(mr))
        with for_range(b, 0, full, mr, name="rt") as r0:
            self.block_tile(r0, mr, chunks)
        with for_range(b, full, self.rows, name="rr") as r:
            self.block_tile(r, 1, chunks)

    def chunks(self):
        """(first column, width) of the vectors that cover one block row of bn outputs."""
        bn, t = self.spec.block[1], self.lanes
        return [(c, min(t, bn - c)) for c in range(0, bn, t)]

    def block_tile(self, r0, mr, chunks):
        """y[r0 : r0 + mr, all columns], mr rows sharing every loaded block row."""
        b, s = self.b, self.spec
        bk, bn = s.block
        with for_range(b, 0, s.n // bn, name="bcol") as j:
            accs = [[entry_alloca(b, ir.VectorType(self.elem, w), name=f"acc{r}_{c}") for c, w in chunks]
                    for r in range(mr)]
            for row in accs:
                for a in row:
                    b.store(zero(a.type.pointee), a)
            start, end = self.column_range(j)
            with for_range(b, start, end, name="blk") as p:
                first = self.block_row(p)
                for i in range(bk):
                    base = b.mul(b.add(b.mul(p, i64(bk)), i64(i)), i64(bn))
                    ws = [load_vec(b, gep(b, self.values, b.add(base, i64(c))), w) for c, w in chunks]
                    for r in range(mr):
                        x = b.load(gep(b, self.a, b.add(b.mul(b.add(r0, i64(r)), i64(s.k)), b.add(first, i64(i)))))
                        for (c, w), wv, a in zip(chunks, ws, accs[r]):
                            b.store(fma(b, splat(b, x, w), wv, b.load(a)), a)
            col0 = b.mul(j, i64(bn))
            for r in range(mr):
                out_row = b.mul(b.add(r0, i64(r)), i64(s.n))
                for (c, w), a in zip(chunks, accs[r]):
                    col = b.add(col0, i64(c))
                    bias = None if self.bias is None else load_vec(b, gep(b, self.bias, col), w)
                    store_vec(b, epilogue(b, b.load(a), bias, s.relu), gep(b, self.y, b.add(out_row, col)))

