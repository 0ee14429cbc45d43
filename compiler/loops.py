"""The one llvmlite helper vocabulary (after numba's cgutils) of lowerings and kernels.

Sections: types and constants; loops (for_range, loop_nest, vector_range, for_steps); integer
arithmetic and strides; memory (gep, entry_alloca, vector loads/stores, masked access, copies);
vectors (splat, lane masks, reductions, fma); intrinsics and internal functions; denormals.
Python ints are accepted wherever an i64 value is (as_i64).
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

from llvmlite import ir

from kcompile.ir import DType, bool_, f32, f64, i8, i32, u8
from kcompile.ir import dtype as to_dtype
from kcompile.ir import i64 as i64_dtype

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
I8P = I8.as_pointer()
FAST = ("contract",)  # lets LLVM fuse a*b+c into FMA without changing other IEEE semantics
# LLVM element type in memory per IR dtype (bool is one byte, as in NumPy)
STORAGE = {f32: F32, f64: F64, i8: I8, u8: I8, i32: I32, i64_dtype: I64, bool_: I8}


def i64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def as_i64(b: ir.IRBuilder, v):
    """Python ints become i64 constants; LLVM values pass through."""
    return i64(v) if isinstance(v, int) else v


def llvm_type(dtype: DType | str) -> ir.Type:
    """The LLVM element type in memory of an IR dtype (or its name: 'f32', 'i8', ...)."""
    try:
        return STORAGE[dtype if isinstance(dtype, DType) else to_dtype(dtype)]
    except (KeyError, ValueError, TypeError):
        raise NotImplementedError(f"dtype {dtype} has no LLVM storage type") from None


def elem_bytes(ty: ir.Type) -> int:
    """Size of a scalar element type in bytes."""
    return {ir.FloatType: 4, ir.DoubleType: 8}.get(type(ty)) or ty.width // 8


def is_float(ty: ir.Type) -> bool:
    return isinstance(ty, (ir.FloatType, ir.DoubleType))


# -- loops -------------------------------------------------------------------------------
@contextmanager
def for_range(builder: ir.IRBuilder, first, stop=None, step=1, name: str = "i", *, start=None):
    """A loop like Python's range: for_range(b, stop) or for_range(b, start, stop[, step[, name]]);
    for_range(b, stop, start=...) too. Yields i (i64); the builder ends after the loop."""
    if stop is None:
        count = first
    elif start is None:
        start, count = first, stop
    else:
        raise TypeError("for_range: give the start either positionally or as start=, not both")
    count = i64(count) if isinstance(count, int) else count
    start = i64(0) if start is None else (i64(start) if isinstance(start, int) else start)
    step = i64(step) if isinstance(step, int) else step
    pre = builder.basic_block
    cond = builder.append_basic_block(f"{name}.cond")
    body = builder.append_basic_block(f"{name}.body")
    end = builder.append_basic_block(f"{name}.end")
    builder.branch(cond)
    builder.position_at_end(cond)
    idx = builder.phi(I64, name=name)
    idx.add_incoming(start, pre)
    builder.cbranch(builder.icmp_signed("<", idx, count), body, end)
    builder.position_at_end(body)
    yield idx
    nxt = builder.add(idx, step, name=f"{name}.next", flags=("nsw",))
    idx.add_incoming(nxt, builder.basic_block)
    builder.branch(cond)
    builder.position_at_end(end)


@contextmanager
def loop_nest(builder: ir.IRBuilder, counts, name: str = "i"):
    """Nested for_range over `counts` (outermost first); yields the tuple of indices."""
    with _nest(builder, list(counts), name, ()) as idx:
        yield idx


@contextmanager
def _nest(builder, counts, name, outer):
    if not counts:
        yield outer
        return
    with for_range(builder, counts[0], name=f"{name}{len(outer)}") as i:
        with _nest(builder, counts[1:], name, outer + (i,)) as idx:
            yield idx


def vector_range(builder: ir.IRBuilder, count, lanes: int, body, name: str = "v", start=None):
    """Call body(index, width) over [start, count): width = lanes in the main loop, then 1 for the tail."""
    count = i64(count) if isinstance(count, int) else count
    start = i64(0) if start is None else start
    if lanes > 1:
        span = builder.sub(count, start)
        main = builder.add(start, builder.mul(builder.sdiv(span, i64(lanes)), i64(lanes)))
        with for_range(builder, main, start=start, step=lanes, name=name) as i:
            body(i, lanes)
        start = main
    with for_range(builder, count, start=start, name=f"{name}.tail") as i:
        body(i, 1)


def for_steps(b: ir.IRBuilder, start, stop, body, name="s"):
    """for (i = start; i < stop; i += step): body(i) emits one step's work and returns its step (i64)."""
    start, stop = as_i64(b, start), as_i64(b, stop)
    pre = b.block
    head, work, done = (b.append_basic_block(f"{name}.{n}") for n in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), work, done)
    b.position_at_end(work)
    step = body(i)
    i.add_incoming(b.add(i, step), b.block)
    b.branch(head)
    b.position_at_end(done)


# -- integer arithmetic ------------------------------------------------------------------
def add_incoming(phis, values, block) -> None:
    """Close a register-tile loop: each phi of a (nested) list gets its value, same nesting, from block."""
    if isinstance(phis, (list, tuple)):
        for phi, value in zip(phis, values):
            add_incoming(phi, value, block)
    else:
        phis.add_incoming(values, block)


def imin(b: ir.IRBuilder, x, y):
    x, y = as_i64(b, x), as_i64(b, y)
    return b.select(b.icmp_signed("<", x, y), x, y)


def imax(b: ir.IRBuilder, x, y):
    x, y = as_i64(b, x), as_i64(b, y)
    return b.select(b.icmp_signed(">", x, y), x, y)


def ceil_div(b: ir.IRBuilder, x, y):
    x, y = as_i64(b, x), as_i64(b, y)
    return b.sdiv(b.add(x, b.sub(y, i64(1))), y)


def round_up(b: ir.IRBuilder, x, multiple: int):
    return b.mul(ceil_div(b, x, multiple), i64(multiple))


# -- vector helpers ----------------------------------------------------------------------
def vec_type(elem: ir.Type, width: int) -> ir.Type:
    return elem if width == 1 else ir.VectorType(elem, width)


def const(ty: ir.Type, value) -> ir.Constant:
    """A constant of a scalar type, or that constant in every lane of a vector type."""
    if isinstance(ty, ir.VectorType):
        return _vector_const(ty.element, ty.count, value)
    return ir.Constant(ty, value)


_SPLATS: dict = {}


def _vector_const(elem: ir.Type, count: int, value) -> ir.Constant:
    """Splat constants, shared: llvmlite builds one Python object per lane (~50 us for 16 lanes, a
    thousand of them in a cold MLP's kernels); a Constant is immutable and has no parent, so one
    object can be every instruction's operand. Keyed by repr too, so that -0.0 and 0.0 stay apart."""
    key = (elem, count, type(value), repr(value))
    hit = _SPLATS.get(key)
    if hit is None:
        if len(_SPLATS) > 4096:
            _SPLATS.clear()
        hit = _SPLATS[key] = ir.Constant(ir.VectorType(elem, count), [ir.Constant(elem, value)] * count)
    return hit


def splat(builder: ir.IRBuilder, scalar, width: int):
    if width == 1:
        return scalar
    vty = ir.VectorType(scalar.type, width)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, i64(0))
    zeros = _vector_const(I32, width, 0)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


def load(builder: ir.IRBuilder, elem_ptr, width: int):
    """Load `width` consecutive elements (a scalar when width == 1)."""
    if width == 1:
        return builder.load(elem_ptr)
    vty = ir.VectorType(elem_ptr.type.pointee, width)
    return builder.load(builder.bitcast(elem_ptr, vty.as_pointer()), align=_align(elem_ptr))


def store(builder: ir.IRBuilder, value, elem_ptr):
    if not isinstance(value.type, ir.VectorType):
        builder.store(value, elem_ptr)
        return
    builder.store(value, builder.bitcast(elem_ptr, value.type.as_pointer()), align=_align(elem_ptr))


def _align(elem_ptr) -> int:
    t = elem_ptr.type.pointee
    return max(1, (t.width // 8) if isinstance(t, ir.IntType) else (4 if t == F32 else 8))


def type_suffix(ty: ir.Type) -> str:
    """LLVM's overload suffix: f32, v8f32, i64, ..."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    if ty == F32:
        return "f32"
    if ty == F64:
        return "f64"
    return f"i{ty.width}"


def intrinsic(builder: ir.IRBuilder, name: str, args, ret=None):
    """Call an overloaded LLVM intrinsic, e.g. intrinsic(b, "llvm.fabs", [x])."""
    full = f"{name}.{type_suffix(args[0].type)}"
    return builder.call(declare_intrinsic(builder.module, full, ret or args[0].type, [a.type for a in args]), args)


def hreduce(builder: ir.IRBuilder, vec, combine):
    """Fold the lanes of a vector with combine(builder, a, b) by halving (log2 steps)."""
    if not isinstance(vec.type, ir.VectorType):
        return vec
    n = vec.type.count
    while n > 1:
        half = n // 2
        lo = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(I32, half), list(range(half))))
        hi = builder.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(I32, half), list(range(half, n))))
        vec = combine(builder, lo, hi)
        n = half
    return builder.extract_element(vec, i64(0))


def zero(ty: ir.Type):
    """0 (or 0.0) of a scalar type, or in every lane of a vector type."""
    return const(ty, 0.0 if is_float(ty.element if isinstance(ty, ir.VectorType) else ty) else 0)


def fma(b: ir.IRBuilder, x, y, acc):
    """acc + x * y: a fused multiply-add where the CPU has one (llvm.fmuladd: a plain multiply and
    add elsewhere, never a libm call), mul + add for integers."""
    if not is_float(x.type.element if isinstance(x.type, ir.VectorType) else x.type):
        return b.add(acc, b.mul(x, y))
    return b.call(declare_intrinsic(b.module, f"llvm.fmuladd.{type_suffix(x.type)}", x.type, [x.type] * 3),
                  [x, y, acc])


def lane_mask(b: ir.IRBuilder, count, lanes: int):
    """<lanes x i1> with the first `count` lanes set (count is a run-time i64)."""
    idx = _lane_indices(lanes)
    return b.icmp_signed("<", idx, splat(b, as_i64(b, count), lanes))


@functools.lru_cache(maxsize=64)
def _lane_indices(lanes: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))


# -- memory ------------------------------------------------------------------------------
def gep(b: ir.IRBuilder, ptr, index):
    """&ptr[index] (inbounds)."""
    return b.gep(ptr, [as_i64(b, index)], inbounds=True)


def vptr(b: ir.IRBuilder, ptr, lanes: int):
    """Reinterpret an element pointer as a pointer to a vector of `lanes` elements."""
    return b.bitcast(ptr, ir.VectorType(ptr.type.pointee, lanes).as_pointer())


def load_vec(b: ir.IRBuilder, ptr, lanes: int):
    """Unaligned vector load of `lanes` consecutive elements (always a vector, unlike load)."""
    return b.load(vptr(b, ptr, lanes), align=1)


def store_vec(b: ir.IRBuilder, value, ptr):
    """Unaligned vector store of `value` at ptr (always a vector, unlike store)."""
    b.store(value, vptr(b, ptr, value.type.count), align=1)


def masked_load(b: ir.IRBuilder, ptr, mask, lanes: int):
    """Load the lanes where mask is set, zeros elsewhere; unset lanes are never touched in memory."""
    vty = ir.VectorType(ptr.type.pointee, lanes)
    fn = declare_intrinsic(b.module, f"llvm.masked.load.{type_suffix(vty)}.p0", vty,
                           [vty.as_pointer(), I32, mask.type, vty])
    return b.call(fn, [vptr(b, ptr, lanes), ir.Constant(I32, 1), mask, zero(vty)])


def optional_masked_load(b: ir.IRBuilder, ptr, present, mask, lanes: int):
    """masked_load of an optional operand: `present` (i1) says whether ptr is a real address at all
    (a null bias, a per-column table that is a scalar). Where it is not, the load reads a stack slot
    of the function with every lane off, never ptr.

    Why not ptr with every lane off: a masked-off lane at an unmapped address faults, suppressed by a
    microcode assist of ~140 cycles per load (Zen 4; Intel's are alike) though nothing is read. A
    bias-less convolution's micro-kernel paid it on its 4 bias loads per tile: 8 % of conv2d_1 of the
    MNIST convnet (13x13x32->64, 1 thread), and every backward GEMM (no bias) paid it too."""
    vty = ir.VectorType(ptr.type.pointee, lanes)
    slots = b.function.__dict__.setdefault("kc_absent_slots", {})
    slot = slots.get(str(vty))
    if slot is None:
        slot = slots[str(vty)] = entry_alloca(b, vty)
    at = b.select(present, vptr(b, ptr, lanes), slot)
    return masked_load(b, b.bitcast(at, ptr.type), b.and_(mask, splat(b, present, lanes)), lanes)


def masked_store(b: ir.IRBuilder, value, ptr, mask):
    vty = value.type
    fn = declare_intrinsic(b.module, f"llvm.masked.store.{type_suffix(vty)}.p0", ir.VoidType(),
                           [vty, vty.as_pointer(), I32, mask.type])
    b.call(fn, [value, vptr(b, ptr, vty.count), ir.Constant(I32, 1), mask])


def masked_gather(b: ir.IRBuilder, base, index, mask, lanes: int):
    """base[index[l]] for the lanes where mask is set (zeros elsewhere); index: <lanes x i64> elements."""
    elem = base.type.pointee
    nbytes = elem_bytes(elem)
    addr = b.add(splat(b, b.ptrtoint(base, I64), lanes), b.mul(index, splat(b, i64(nbytes), lanes)))
    pty = ir.VectorType(base.type, lanes)
    vty = ir.VectorType(elem, lanes)
    fn = declare_intrinsic(b.module, f"llvm.masked.gather.{type_suffix(vty)}.v{lanes}p0", vty,
                           [pty, I32, mask.type, vty])
    return b.call(fn, [b.inttoptr(addr, pty), ir.Constant(I32, nbytes), mask, zero(vty)])



def prefetch(b: ir.IRBuilder, ptr, locality: int = 2, write: bool = False) -> None:
    """Hint the cache line holding *ptr toward the caches (locality 3: L1 ... 1: the outer levels;
    write: fetch it to be written, prefetchw); never faults, whatever the address."""
    fn = declare_intrinsic(b.module, "llvm.prefetch.p0", ir.VoidType(), [I8P, I32, I32, I32])
    b.call(fn, [b.bitcast(ptr, I8P), ir.Constant(I32, int(write)), ir.Constant(I32, locality), ir.Constant(I32, 1)])

def entry_alloca(b: ir.IRBuilder, ty: ir.Type, count: int | None = None, align: int | None = 64, name: str = ""):
    """A stack slot (count None) or fixed-size buffer in the function's entry block, so loops never
    grow the stack and LLVM can promote single slots to registers."""
    cur = b.block
    b.position_at_start(b.function.entry_basic_block)
    ptr = b.alloca(ty, None if count is None else i64(count), name=name)
    if align is not None and count is not None:
        ptr.align = align
    b.position_at_end(cur)
    return ptr


# -- functions ---------------------------------------------------------------------------
def declare_intrinsic(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    """Declare (once) an LLVM intrinsic by its full name, such as llvm.fma.v16f32."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def function_pointer_global(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.GlobalVariable:
    """The module's global function pointer `name` (created null on first use), which the runtime that
    loads the code points at a host function: the thread launcher, the cross-process summing hook."""
    g = module.globals.get(name)
    if g is None:
        g = ir.GlobalVariable(module, fnty.as_pointer(), name=name)
        g.initializer = ir.Constant(fnty.as_pointer(), None)
    return g


def internal_function(module: ir.Module, name: str, ret: ir.Type, args: list, arg_names=()):
    """A fresh internal function, or None if the module already has one by this name."""
    if name in module.globals:
        return None
    fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    fn.linkage = "internal"
    for a, n in zip(fn.args, arg_names):
        a.name = n
    return fn


# -- denormals ---------------------------------------------------------------------------
MXCSR_FTZ_DAZ = 0x8040  # flush-to-zero (bit 15) and denormals-are-zero (bit 6)


def flush_denormals(builder: ir.IRBuilder):
    """Set FTZ/DAZ in MXCSR (x86); returns the saved register for restore_denormals."""
    saved = builder.alloca(I32, name="mxcsr.saved")
    new = builder.alloca(I32, name="mxcsr.new")
    _mxcsr(builder, "stmxcsr", saved)
    builder.store(builder.or_(builder.load(saved), ir.Constant(I32, MXCSR_FTZ_DAZ)), new)
    _mxcsr(builder, "ldmxcsr", new)
    return saved


def restore_denormals(builder: ir.IRBuilder, saved) -> None:
    _mxcsr(builder, "ldmxcsr", saved)


def _mxcsr(builder, op, slot):
    module = builder.module
    name = f"llvm.x86.sse.{op}"
    fn = module.globals.get(name) or ir.Function(module, ir.FunctionType(ir.VoidType(), [I8.as_pointer()]), name)
    builder.call(fn, [builder.bitcast(slot, I8.as_pointer())])


def copy_bytes(builder: ir.IRBuilder, dst, src, nbytes) -> None:
    """dst[0:nbytes] = src[0:nbytes] (i8 pointers), as llvm.memmove: what LLVM made of the byte loop
    this was (at O2), without the loop passes' compile time (~12 copies in a train step's entry)."""
    fn = declare_intrinsic(builder.module, "llvm.memmove.p0i8.p0i8.i64", ir.VoidType(), [I8P, I8P, I64, I1])
    builder.call(fn, [dst, src, as_i64(builder, nbytes), ir.Constant(I1, 0)])


def _is_zero(value) -> bool:
    """A constant whose bytes are all zero (not -0.0)."""
    c = getattr(value, "constant", None)
    return isinstance(value, ir.Constant) and isinstance(value.type, (ir.IntType, ir.FloatType, ir.DoubleType)) \
        and c is not None and c == 0 and str(c) != "-0.0"


def product(builder: ir.IRBuilder, values):
    """The i64 product of run-time sizes (1 for none)."""
    n = i64(1)
    for v in values:
        n = builder.mul(n, v)
    return n


def broadcast_strides(builder: ir.IRBuilder, sizes, present) -> list:
    """Row-major element strides over `sizes`, counting only the axes `present` in the operand
    (stride 0 where it broadcasts)."""
    out, s = [], i64(1)
    for size, here in zip(reversed(list(sizes)), reversed(list(present))):
        out.append(s if here else i64(0))
        if here:
            s = builder.mul(s, size)
    return out[::-1]


def row_major_strides(builder: ir.IRBuilder, dims) -> list:
    """Element strides of a C-contiguous array with run-time dims."""
    dims = list(dims)
    return broadcast_strides(builder, dims, [True] * len(dims))


def offset(builder: ir.IRBuilder, idx, strides):
    """sum(idx[k] * strides[k]) as i64."""
    total = i64(0)
    for i, s in zip(idx, strides):
        total = builder.add(total, builder.mul(i, s))
    return total


def copy_strided(builder: ir.IRBuilder, dst, dst_strides, src, src_strides, counts) -> None:
    """dst[idx . dst_strides] = src[idx . src_strides] for idx over counts (typed element pointers)."""
    if not counts:
        builder.store(builder.load(src), dst)
        return
    with loop_nest(builder, counts[:-1], name="cp") as idx:
        d = builder.gep(dst, [offset(builder, idx, dst_strides[:-1])])
        s = builder.gep(src, [offset(builder, idx, src_strides[:-1])])
        with for_range(builder, counts[-1], name="cp.in") as j:
            v = builder.load(builder.gep(s, [builder.mul(j, src_strides[-1])]))
            builder.store(v, builder.gep(d, [builder.mul(j, dst_strides[-1])]))


def fill(builder: ir.IRBuilder, ptr, count, value) -> None:
    """ptr[0:count] = value (a constant of the element type); zeros as llvm.memset (see copy_bytes),
    other constants with 32-byte vector stores (legal IR anywhere: LLVM splits them where narrower), so
    that the JIT's glue, optimized at O1 without the loop vectorizer (driver.py), stores as fast."""
    b = builder
    ty = value.type
    plain = isinstance(ty, (ir.FloatType, ir.DoubleType)) or (isinstance(ty, ir.IntType) and ty.width % 8 == 0)
    size = elem_bytes(ty) if plain else 0     # bytes per element where memset and vectors apply
    if _is_zero(value) and size:
        fn = declare_intrinsic(b.module, "llvm.memset.p0i8.i64", ir.VoidType(), [I8P, I8, I64, I1])
        nbytes = b.mul(as_i64(b, count), i64(size))
        b.call(fn, [b.bitcast(ptr, I8P), ir.Constant(I8, 0), nbytes, ir.Constant(I1, 0)])
        return
    count, rest = as_i64(b, count), i64(0)
    lanes = 32 // size if size and isinstance(value, ir.Constant) and value.constant is not None else 1
    if lanes > 1:
        rest = b.mul(b.sdiv(count, i64(lanes)), i64(lanes))
        vec = const(ir.VectorType(value.type, lanes), value.constant)
        with for_range(b, i64(0), rest, lanes, name="fill") as i:
            store_vec(b, vec, b.gep(ptr, [i]))
    with for_range(b, rest, count, name="fill.tail") as i:
        b.store(value, b.gep(ptr, [i]))
