"""Small llvmlite helpers shared by the kernel emitters: loops, constants, vectors, intrinsics."""
from __future__ import annotations


from llvmlite import ir

from .. import loops
from ..loops import I1, I8, I32, I64, i64

I8P = I8.as_pointer()

_LLVM_TYPES = {"f32": ir.FloatType(), "f64": ir.DoubleType(), "i8": I8, "u8": I8,
               "i32": I32, "i64": I64}


def llvm_type(dtype_name: str) -> ir.Type:
    """The LLVM element type of an IR dtype name ('f32', 'f64', 'i32', ...)."""
    try:
        return _LLVM_TYPES[dtype_name]
    except KeyError:
        raise NotImplementedError(f"kernels: dtype {dtype_name} is not supported") from None


def elem_bytes(ty: ir.Type) -> int:
    """Size of a scalar element type in bytes."""
    return {ir.FloatType: 4, ir.DoubleType: 8}.get(type(ty)) or ty.width // 8


def is_float(ty: ir.Type) -> bool:
    return isinstance(ty, (ir.FloatType, ir.DoubleType))


def as_i64(b: ir.IRBuilder, v):
    """Python ints become constants; LLVM values pass through."""
    return i64(v) if isinstance(v, int) else v


def for_range(b: ir.IRBuilder, start, stop, step=1, name="i"):
    """for (i = start; i < stop; i += step) — yields the induction variable (i64).

    The kernels' argument order (start, stop); compiler/loops.for_range builds the loop.
    """
    return loops.for_range(b, as_i64(b, stop), start=as_i64(b, start), step=as_i64(b, step), name=name)


def imin(b: ir.IRBuilder, x, y):
    x, y = as_i64(b, x), as_i64(b, y)
    return b.select(b.icmp_signed("<", x, y), x, y)


def imax(b: ir.IRBuilder, x, y):
    x, y = as_i64(b, x), as_i64(b, y)
    return b.select(b.icmp_signed(">", x, y), x, y)


def ceil_div(b: ir.IRBuilder, x, y):
    x, y = as_i64(b, x), as_i64(b, y)
    return b.sdiv(b.add(x, b.sub(y, i64(1))), y)


def gep(b: ir.IRBuilder, ptr, index):
    return b.gep(ptr, [as_i64(b, index)], inbounds=True)


def vec_type(elem: ir.Type, lanes: int) -> ir.VectorType:
    return ir.VectorType(elem, lanes)


def splat(b: ir.IRBuilder, scalar, lanes: int):
    """Broadcast a scalar to every lane."""
    vty = vec_type(scalar.type, lanes)
    v = b.insert_element(ir.Constant(vty, ir.Undefined), scalar, ir.Constant(I32, 0))
    return b.shuffle_vector(v, ir.Constant(vty, ir.Undefined), ir.Constant(vec_type(I32, lanes), [0] * lanes))


def zero(ty: ir.Type):
    return ir.Constant(ty, 0.0 if is_float(ty) else 0) if not isinstance(ty, ir.VectorType) else \
        ir.Constant(ty, [0.0 if is_float(ty.element) else 0] * ty.count)


def vptr(b: ir.IRBuilder, ptr, lanes: int):
    """Reinterpret an element pointer as a pointer to a vector of `lanes` elements."""
    return b.bitcast(ptr, vec_type(ptr.type.pointee, lanes).as_pointer())


def load_vec(b: ir.IRBuilder, ptr, lanes: int):
    """Unaligned vector load of `lanes` consecutive elements."""
    return b.load(vptr(b, ptr, lanes), align=1)


def store_vec(b: ir.IRBuilder, value, ptr):
    b.store(value, vptr(b, ptr, value.type.count), align=1)


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: list) -> ir.Function:
    """Declare (once) an LLVM intrinsic such as llvm.fma.v16f32."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    return fn


def type_suffix(ty: ir.Type) -> str:
    """LLVM's overload suffix: f32, v16f32, i32, v8i64 ..."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    if isinstance(ty, ir.FloatType):
        return "f32"
    if isinstance(ty, ir.DoubleType):
        return "f64"
    return f"i{ty.width}"


def fma(b: ir.IRBuilder, x, y, acc):
    """acc + x * y: a fused multiply-add where the CPU has one (llvm.fmuladd: a plain multiply and
    add elsewhere, never a libm call), mul + add for integers."""
    if not is_float(x.type.element if isinstance(x.type, ir.VectorType) else x.type):
        return b.add(acc, b.mul(x, y))
    fn = intrinsic(b.module, f"llvm.fmuladd.{type_suffix(x.type)}", x.type, [x.type] * 3)
    return b.call(fn, [x, y, acc])


def lane_mask(b: ir.IRBuilder, count, lanes: int):
    """<lanes x i1> with the first `count` lanes set (count is a run-time i64)."""
    idx = ir.Constant(vec_type(I64, lanes), list(range(lanes)))
    return b.icmp_signed("<", idx, splat(b, as_i64(b, count), lanes))


def masked_load(b: ir.IRBuilder, ptr, mask, lanes: int):
    """Load the lanes where mask is set, zeros elsewhere; unset lanes are never touched in memory."""
    vty = vec_type(ptr.type.pointee, lanes)
    fn = intrinsic(b.module, f"llvm.masked.load.{type_suffix(vty)}.p0", vty,
                   [vty.as_pointer(), I32, mask.type, vty])
    return b.call(fn, [vptr(b, ptr, lanes), ir.Constant(I32, 1), mask, zero(vty)])


def masked_store(b: ir.IRBuilder, value, ptr, mask):
    vty = value.type
    fn = intrinsic(b.module, f"llvm.masked.store.{type_suffix(vty)}.p0", ir.VoidType(),
                   [vty, vty.as_pointer(), I32, mask.type])
    b.call(fn, [value, vptr(b, ptr, vty.count), ir.Constant(I32, 1), mask])


def internal_function(module: ir.Module, name: str, ret: ir.Type, args: list, arg_names=()):
    """A fresh internal function, or None if the module already has one by this name."""
    if name in module.globals:
        return None
    fn = ir.Function(module, ir.FunctionType(ret, args), name=name)
    fn.linkage = "internal"
    for a, n in zip(fn.args, arg_names):
        a.name = n
    return fn


def entry_alloca(b: ir.IRBuilder, ty: ir.Type, count: int, align: int = 64):
    """A fixed-size stack buffer allocated in the function's entry block (so loops do not grow the stack)."""
    cur = b.block
    b.position_at_start(b.function.entry_basic_block)
    ptr = b.alloca(ty, i64(count))
    ptr.align = align
    b.position_at_end(cur)
    return ptr


def round_up(b: ir.IRBuilder, x, multiple: int):
    return b.mul(ceil_div(b, x, multiple), i64(multiple))


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


def masked_gather(b: ir.IRBuilder, base, index, mask, lanes: int):
    """base[index[l]] for the lanes where mask is set (zeros elsewhere); index: <lanes x i64> elements."""
    elem = base.type.pointee
    nbytes = elem_bytes(elem)
    addr = b.add(splat(b, b.ptrtoint(base, I64), lanes), b.mul(index, splat(b, i64(nbytes), lanes)))
    pty = ir.VectorType(base.type, lanes)
    vty = vec_type(elem, lanes)
    fn = intrinsic(b.module, f"llvm.masked.gather.{type_suffix(vty)}.v{lanes}p0", vty,
                   [pty, I32, mask.type, vty])
    return b.call(fn, [b.inttoptr(addr, pty), ir.Constant(I32, nbytes), mask, zero(vty)])
