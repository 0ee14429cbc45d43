"""A small loop-nest builder over llvmlite.ir (after numba's cgutils), plus vector helpers."""
from __future__ import annotations

from contextlib import contextmanager

from llvmlite import ir

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
FAST = ("contract",)  # lets LLVM fuse a*b+c into FMA without changing other IEEE semantics


def i64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


@contextmanager
def for_range(builder: ir.IRBuilder, count, start=None, step=1, name: str = "i"):
    """`for (i = start; i < count; i += step)`: yields i (i64); the builder ends after the loop."""
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


# -- vector helpers ----------------------------------------------------------------------
def vec_type(elem: ir.Type, width: int) -> ir.Type:
    return elem if width == 1 else ir.VectorType(elem, width)


def const(ty: ir.Type, value) -> ir.Constant:
    """A constant of a scalar type, or that constant in every lane of a vector type."""
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def splat(builder: ir.IRBuilder, scalar, width: int):
    if width == 1:
        return scalar
    vty = ir.VectorType(scalar.type, width)
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), scalar, i64(0))
    zeros = ir.Constant(ir.VectorType(I32, width), [0] * width)
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
    module = builder.module
    ret = ret or args[0].type
    full = f"{name}.{type_suffix(args[0].type)}"
    fn = module.globals.get(full)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, [a.type for a in args]), full)
    return builder.call(fn, args)


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
    """dst[0:nbytes] = src[0:nbytes] (i8 pointers); LLVM turns the loop into memcpy."""
    with for_range(builder, nbytes, name="cpy") as i:
        builder.store(builder.load(builder.gep(src, [i])), builder.gep(dst, [i]))


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
    """ptr[0:count] = value (a constant of the element type)."""
    with for_range(builder, count, name="fill") as i:
        builder.store(value, builder.gep(ptr, [i]))


def alloca_once(builder: ir.IRBuilder, ty: ir.Type, name: str = ""):
    """A stack slot in the function's entry block (so LLVM promotes it to a register)."""
    with builder.goto_entry_block():
        return builder.alloca(ty, name=name)
