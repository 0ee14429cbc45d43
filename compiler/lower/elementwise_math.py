"""Per-element code for every elementwise op, on scalars or vectors alike.

EMITTERS[op](b, args, node) gets the operands in their compute types (bool is i1) and returns
the result in the compute type of node.outputs[0]. The fused-loop lowering strings these together.
"""
from __future__ import annotations

from llvmlite import ir

from kcompile.ir import bool_, u8

from ..loops import FAST, I64, const, intrinsic, vec_type
from . import mathfns
from .context import compute_type


def _lanes(v) -> int:
    return v.type.count if isinstance(v.type, ir.VectorType) else 1


def _is_float(v) -> bool:
    t = v.type.element if isinstance(v.type, ir.VectorType) else v.type
    return isinstance(t, (ir.FloatType, ir.DoubleType))


def _zero(v):
    return const(v.type, 0.0 if _is_float(v) else 0)


def _unsigned(node) -> bool:
    return node.inputs[0].type.dtype in (u8, bool_)


def _neg(b, x, node):
    return b.fneg(x) if _is_float(x) else b.sub(_zero(x), x)


def _abs(b, x, node):
    if _is_float(x):
        return intrinsic(b, "llvm.fabs", [x])
    return x if _unsigned(node) else b.select(b.icmp_signed("<", x, _zero(x)), b.sub(_zero(x), x), x)


def _sign(b, x, node):
    if _is_float(x):
        pos = b.select(b.fcmp_ordered(">", x, _zero(x)), const(x.type, 1.0), x)
        return b.select(b.fcmp_ordered("<", x, _zero(x)), const(x.type, -1.0), pos)
    if _unsigned(node):
        return b.zext(b.icmp_unsigned("!=", x, _zero(x)), x.type)
    gt = b.zext(b.icmp_signed(">", x, _zero(x)), x.type)
    return b.sub(gt, b.zext(b.icmp_signed("<", x, _zero(x)), x.type))


def _relu(b, x, node):
    if _is_float(x):  # NaN stays NaN, as np.maximum(x, 0)
        return b.select(b.fcmp_ordered("<", x, _zero(x)), _zero(x), x)
    return x if _unsigned(node) else b.select(b.icmp_signed("<", x, _zero(x)), _zero(x), x)


def _square(b, x, node):
    return b.fmul(x, x, flags=FAST) if _is_float(x) else b.mul(x, x)


def _fconst(x, v):
    return const(x.type, v)


UNARY = {
    "neg": _neg,
    "abs": _abs,
    "sign": _sign,
    "relu": _relu,
    "square": _square,
    "exp": lambda b, x, n: mathfns.exp(b, x),
    "log": lambda b, x, n: mathfns.log(b, x),
    "sqrt": lambda b, x, n: intrinsic(b, "llvm.sqrt", [x]),
    "rsqrt": lambda b, x, n: b.fdiv(_fconst(x, 1.0), intrinsic(b, "llvm.sqrt", [x])),
    "reciprocal": lambda b, x, n: b.fdiv(_fconst(x, 1.0), x),
    "tanh": lambda b, x, n: mathfns.tanh(b, x),
    "sigmoid": lambda b, x, n: mathfns.sigmoid(b, x),
    "erf": lambda b, x, n: mathfns.erf(b, x),
    "softplus": lambda b, x, n: mathfns.softplus(b, x),
    "floor": lambda b, x, n: intrinsic(b, "llvm.floor", [x]),
    "ceil": lambda b, x, n: intrinsic(b, "llvm.ceil", [x]),
    "round": lambda b, x, n: intrinsic(b, "llvm.roundeven", [x]),
    "sin": lambda b, x, n: mathfns.sin(b, x),
    "cos": lambda b, x, n: mathfns.cos(b, x),
    "log1p": lambda b, x, n: mathfns.log1p(b, x),
    "expm1": lambda b, x, n: mathfns.expm1(b, x),
    "logical_not": lambda b, x, n: b.xor(x, const(x.type, 1)),
}


def _arith(fop, iop):
    def emit(b, x, y, node):
        return getattr(b, fop)(x, y, flags=FAST) if _is_float(x) else getattr(b, iop)(x, y)
    return emit


def _minmax(which):
    def emit(b, x, y, node):
        if _is_float(x):  # llvm.maximum/minimum propagate NaN like NumPy
            return intrinsic(b, f"llvm.{which}imum", [x, y])
        cmp = b.icmp_unsigned if _unsigned(node) else b.icmp_signed
        return b.select(cmp(">" if which == "max" else "<", x, y), x, y)
    return emit


def _compare(op, fkind="ordered"):
    def emit(b, x, y, node):
        if _is_float(x):
            return (b.fcmp_ordered if fkind == "ordered" else b.fcmp_unordered)(op, x, y)
        return (b.icmp_unsigned if _unsigned(node) else b.icmp_signed)(op, x, y)
    return emit


BINARY = {
    "add": _arith("fadd", "add"),
    "sub": _arith("fsub", "sub"),
    "mul": _arith("fmul", "mul"),
    "div": lambda b, x, y, n: b.fdiv(x, y),
    "pow": lambda b, x, y, n: mathfns.power(b, x, y),
    "maximum": _minmax("max"),
    "minimum": _minmax("min"),
    "equal": _compare("=="),
    "not_equal": _compare("!=", "unordered"),  # NaN != NaN is true
    "less": _compare("<"),
    "less_equal": _compare("<="),
    "greater": _compare(">"),
    "greater_equal": _compare(">="),
    "logical_and": lambda b, x, y, n: b.and_(x, y),
    "logical_or": lambda b, x, y, n: b.or_(x, y),
}


def emit_cast(b: ir.IRBuilder, x, src, dst):
    """Convert a compute-type value from dtype src to dtype dst with NumPy's astype rules."""
    lanes = _lanes(x)
    to = vec_type(compute_type(dst), lanes)
    if src == dst:
        return x
    if dst == bool_:
        return b.fcmp_unordered("!=", x, _zero(x)) if src.is_float else b.icmp_unsigned("!=", x, _zero(x))
    if src.is_float and dst.is_float:
        return b.fpext(x, to) if dst.itemsize > src.itemsize else b.fptrunc(x, to)
    if src.is_float:  # truncates toward zero; narrow ints wrap like NumPy's C conversion
        wide = b.fptosi(x, vec_type(I64, lanes))
        return wide if dst.itemsize == 8 else b.trunc(wide, to)
    if dst.is_float:
        return (b.uitofp if src in (u8, bool_) else b.sitofp)(x, to)
    if dst.itemsize == src.itemsize and src != bool_:
        return x
    if dst.itemsize < src.itemsize:
        return b.trunc(x, to)
    return (b.zext if src in (u8, bool_) else b.sext)(x, to)


def _unary_emitter(fn):
    return lambda b, args, node: fn(b, args[0], node)


def _binary_emitter(fn):
    return lambda b, args, node: fn(b, args[0], args[1], node)


EMITTERS = {
    **{op: _unary_emitter(fn) for op, fn in UNARY.items()},
    **{op: _binary_emitter(fn) for op, fn in BINARY.items()},
    "where": lambda b, args, node: b.select(args[0], args[1], args[2]),
    "cast": lambda b, args, node: emit_cast(b, args[0], node.inputs[0].type.dtype, node.attrs["dtype"]),
    "broadcast_to": lambda b, args, node: args[0],  # broadcasting is done by the loop's index mapping
    "stop_gradient": lambda b, args, node: args[0],  # the identity forward; autodiff reads the op
}


def emit_node(b: ir.IRBuilder, node, args):
    """The value of one elementwise node from its operand values."""
    if node.op not in EMITTERS:
        raise KeyError(f"op '{node.op}' has no elementwise emitter (compiler/lower/elementwise_math.py)")
    return EMITTERS[node.op](b, args, node)


def scalar_constant(node, lanes: int):
    """The immediate of a one-element constant node, in its compute type."""
    value = node.attrs["value"].reshape(-1)[0]
    dt = node.outputs[0].type.dtype
    ty = vec_type(compute_type(dt), lanes)
    if dt.is_float:
        return const(ty, float(value))
    if dt == bool_:
        return const(ty, int(bool(value)))
    bits = 8 * dt.itemsize
    v = int(value) & ((1 << bits) - 1)  # LLVM integer literals are signed
    return const(ty, v - (1 << bits) if v >= 1 << (bits - 1) else v)

