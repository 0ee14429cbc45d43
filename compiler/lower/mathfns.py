"""Vectorized polynomial transcendentals for f32 (Cephes / Eigen coefficients).

Each function takes llvm values of a float type or a vector of it and returns the same type, so one
body serves the vector loop and its scalar tail. f64 calls libm (accuracy over speed: f64 is not
a hot path in the networks we compile); f32 calls libm only for sin/cos of |x| >= 8192.
"""
from __future__ import annotations

import math

from llvmlite import ir

from ..loops import F32, FAST, I32, entry_alloca, const, intrinsic, vec_type


class VMath:
    """Arithmetic on one float (vector) type with contractable multiply-adds."""

    def __init__(self, b: ir.IRBuilder, ty: ir.Type):
        self.b, self.ty = b, ty
        lanes = ty.count if isinstance(ty, ir.VectorType) else 1
        self.ity = vec_type(I32, lanes)

    def c(self, v):
        return const(self.ty, v)

    def add(self, x, y):
        return self.b.fadd(x, y, flags=FAST)

    def sub(self, x, y):
        return self.b.fsub(x, y, flags=FAST)

    def mul(self, x, y):
        return self.b.fmul(x, y, flags=FAST)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def poly(self, x, coeffs):
        """Horner: coeffs from the highest power down."""
        p = self.c(coeffs[0])
        for k in coeffs[1:]:
            p = self.add(self.mul(p, x), self.c(k))
        return p

    def cmp(self, op, x, y):
        return self.b.fcmp_ordered(op, x, y)

    def isnan(self, x):
        return self.b.fcmp_unordered("uno", x, x)

    def sel(self, cond, x, y):
        return self.b.select(cond, x, y)

    def clamp(self, x, lo, hi):
        """NaN-preserving clamp (ordered compares are false for NaN)."""
        x = self.sel(self.cmp("<", x, self.c(lo)), self.c(lo), x)
        return self.sel(self.cmp(">", x, self.c(hi)), self.c(hi), x)

    def fabs(self, x):
        return intrinsic(self.b, "llvm.fabs", [x])

    def floor(self, x):
        return intrinsic(self.b, "llvm.floor", [x])

    def pow2i(self, n):
        """2**n for an i32 (vector) n in the normal exponent range."""
        bits = self.b.shl(self.b.add(n, const(self.ity, 127)), const(self.ity, 23))
        return self.b.bitcast(bits, self.ty)


_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_LOG_POLY = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
             -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def is_f32(x) -> bool:
    t = x.type.element if isinstance(x.type, ir.VectorType) else x.type
    return t == F32


def exp(b, x):
    if not is_f32(x):
        return libm(b, "exp", x)
    m = VMath(b, x.type)
    nan = m.isnan(x)
    xc = m.sel(nan, m.c(0.0), m.clamp(x, -104.0, 89.0))  # keeps 2**n finite; overflow happens below
    n = m.floor(m.add(m.mul(xc, m.c(1.4426950408889634)), m.c(0.5)))
    r = m.sub(m.sub(xc, m.mul(n, m.c(0.693359375))), m.mul(n, m.c(-2.12194440e-4)))
    p = m.poly(r, _EXP_POLY)
    y = m.add(m.add(m.mul(m.mul(p, r), r), r), m.c(1.0))
    ni = b.fptosi(n, m.ity)
    half = b.ashr(ni, const(m.ity, 1))  # two factors so that 2**n never leaves the normal range
    y = m.mul(m.mul(y, m.pow2i(half)), m.pow2i(b.sub(ni, half)))
    return m.sel(nan, x, y)



def exp_nonpositive(b, x):
    """exp(x) for x <= 0 or NaN in f32 (softmax's max-shifted scores): no overflow side to guard, so one
    clamp and one 2**n, and n rounded by the 1.5 * 2**23 trick (its integer read from the sum's bits:
    no float-to-int conversion, whose NaN case LLVM leaves undefined). Below -87 the result is 0
    (exp there is under 1.7e-38, a denormal or 0 in the reference too)."""
    m = VMath(b, x.type)
    low = m.cmp("<", x, m.c(-87.0))        # false for NaN: NaN flows through and comes out NaN
    xc = m.sel(low, m.c(-87.0), x)
    magic = m.c(12582912.0)
    t = m.add(m.mul(xc, m.c(1.4426950408889634)), magic)
    n = m.sub(t, magic)
    r = m.sub(m.sub(xc, m.mul(n, m.c(0.693359375))), m.mul(n, m.c(-2.12194440e-4)))
    y = m.add(m.add(m.mul(m.mul(m.poly(r, _EXP_POLY), r), r), r), m.c(1.0))
    ni = b.sub(b.bitcast(t, m.ity), b.bitcast(magic, m.ity))
    return m.sel(low, m.c(0.0), m.mul(y, m.pow2i(ni)))

def log(b, x):
    if not is_f32(x):
        return libm(b, "log", x)
    m = VMath(b, x.type)
    bits = b.bitcast(x, m.ity)
    e = b.sub(b.and_(b.lshr(bits, const(m.ity, 23)), const(m.ity, 0xFF)), const(m.ity, 126))
    mant = b.bitcast(b.or_(b.and_(bits, const(m.ity, 0x807FFFFF)), const(m.ity, 0x3F000000)), x.type)
    small = m.cmp("<", mant, m.c(0.707106781186547524))
    e = b.sub(e, b.zext(small, m.ity))
    f = m.sub(m.sel(small, m.add(mant, mant), mant), m.c(1.0))
    ef = b.sitofp(e, x.type)
    z = m.mul(f, f)
    y = m.mul(m.mul(m.poly(f, _LOG_POLY), f), z)
    y = m.add(y, m.mul(ef, m.c(-2.12194440e-4)))
    y = m.sub(y, m.mul(z, m.c(0.5)))
    r = m.add(m.add(f, y), m.mul(ef, m.c(0.693359375)))
    r = m.sel(m.cmp("==", x, m.c(math.inf)), x, r)
    r = m.sel(m.cmp("==", x, m.c(0.0)), m.c(-math.inf), r)
    return m.sel(b.fcmp_unordered("ult", x, m.c(0.0)), m.c(math.nan), r)


def log1p(b, x):
    if not is_f32(x):
        return libm(b, "log1p", x)
    m = VMath(b, x.type)
    u = m.add(x, m.c(1.0))
    d = m.sub(u, m.c(1.0))
    r = m.mul(log(b, u), m.div(x, d))  # Goldberg: the rounding of 1+x cancels out
    r = m.sel(m.cmp("==", d, m.c(0.0)), x, r)
    return m.sel(m.cmp("==", x, m.c(math.inf)), x, r)


def expm1(b, x):
    if not is_f32(x):
        return libm(b, "expm1", x)
    m = VMath(b, x.type)
    u = exp(b, x)
    d = m.sub(u, m.c(1.0))
    r = m.div(m.mul(d, x), log(b, u))  # Kahan: exact where u rounds
    r = m.sel(m.cmp("==", d, m.c(-1.0)), d, r)
    r = m.sel(m.cmp("==", u, m.c(1.0)), x, r)
    return m.sel(m.cmp("==", u, m.c(math.inf)), u, r)


def tanh(b, x):
    if not is_f32(x):
        return libm(b, "tanh", x)
    m = VMath(b, x.type)
    xc = m.clamp(x, -7.90531110763549805, 7.90531110763549805)
    x2 = m.mul(xc, xc)
    r = m.div(m.mul(xc, m.poly(x2, _TANH_P)), m.poly(x2, _TANH_Q))
    return m.sel(m.cmp("<", m.fabs(x), m.c(0.0004)), x, r)


def erf(b, x):
    if not is_f32(x):
        return libm(b, "erf", x)
    m = VMath(b, x.type)
    xc = m.clamp(x, -4.0, 4.0)
    x2 = m.mul(xc, xc)
    return m.div(m.mul(xc, m.poly(x2, _ERF_P)), m.poly(x2, _ERF_Q))


def sigmoid(b, x):
    m = VMath(b, x.type)
    return m.div(m.c(1.0), m.add(m.c(1.0), exp(b, b.fneg(x))))


def softplus(b, x):
    """max(x, 0) + log1p(exp(-|x|)): never overflows."""
    m = VMath(b, x.type)
    pos = m.sel(m.cmp(">", x, m.c(0.0)), x, m.c(0.0))
    return m.add(pos, log1p(b, exp(b, b.fneg(m.fabs(x)))))


def power(b, a, e):
    """NumPy's (C99's) power: exp(e*log|a|), signed for negative a with integral e, NaN for other negative
    finite a; pow(-inf, e) = inf or 0 by the sign of e, and pow(1, e) = pow(a, 0) = 1 even for NaN."""
    if not is_f32(a):
        return libm(b, "pow", a, e)
    m = VMath(b, a.type)
    r = exp(b, m.mul(e, log(b, m.fabs(a))))
    integral = m.cmp("==", m.floor(e), e)
    half = m.mul(e, m.c(0.5))
    odd = m.cmp("!=", m.floor(half), half)
    no_fraction = b.or_(m.cmp("==", a, m.c(-math.inf)), m.cmp("==", a, m.c(0.0)))   # -inf and -0
    signed = m.sel(integral, m.sel(odd, b.fneg(r), r), m.sel(no_fraction, r, m.c(math.nan)))
    negative = b.icmp_signed("<", b.bitcast(a, m.ity), const(m.ity, 0))   # the sign bit: -0 counts
    r = m.sel(negative, signed, r)
    unit = b.and_(m.cmp("==", m.fabs(a), m.c(1.0)), m.cmp("==", m.fabs(e), m.c(math.inf)))  # (-1)**inf
    one = b.or_(b.or_(m.cmp("==", e, m.c(0.0)), m.cmp("==", a, m.c(1.0))), unit)
    return m.sel(one, m.c(1.0), r)


_SIN_POLY = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS_POLY = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)


def sin(b, x):
    return _sincos(b, x, cosine=False)


def cos(b, x):
    return _sincos(b, x, cosine=True)


def _sincos(b, x, cosine: bool):
    """Cephes sinf/cosf: reduce by pi/4 in three parts, then the sine or cosine polynomial."""
    if not is_f32(x):
        return libm(b, "cos" if cosine else "sin", x)
    m = VMath(b, x.type)
    ax = m.fabs(x)
    finite = m.cmp("<", ax, m.c(8192.0))  # beyond this the three-part reduction loses precision
    axr = m.sel(finite, ax, m.c(0.0))
    j = b.fptosi(m.mul(axr, m.c(4.0 / math.pi)), m.ity)
    j = b.add(j, b.and_(j, const(m.ity, 1)))  # round up to even: octant pairs
    y = b.sitofp(j, x.type)
    j = b.and_(j, const(m.ity, 7))
    upper = b.icmp_signed(">", j, const(m.ity, 3))
    j = b.select(upper, b.sub(j, const(m.ity, 4)), j)
    flip = upper
    if cosine:
        flip = b.xor(upper, b.icmp_signed(">", j, const(m.ity, 1)))
    else:
        flip = b.xor(upper, m.cmp("<", x, m.c(0.0)))
    z = m.sub(m.sub(m.sub(axr, m.mul(y, m.c(0.78515625))), m.mul(y, m.c(2.4187564849853515625e-4))),
              m.mul(y, m.c(3.77489497744594108e-8)))
    zz = m.mul(z, z)
    cos_part = m.add(m.sub(m.mul(m.mul(m.poly(zz, _COS_POLY), zz), zz), m.mul(zz, m.c(0.5))), m.c(1.0))
    sin_part = m.add(m.mul(m.mul(m.poly(zz, _SIN_POLY), zz), z), z)
    middle = b.or_(b.icmp_signed("==", j, const(m.ity, 1)), b.icmp_signed("==", j, const(m.ity, 2)))
    r = m.sel(middle, sin_part if cosine else cos_part, cos_part if cosine else sin_part)
    r = m.sel(flip, b.fneg(r), r)
    return _large_arguments_via_libm(b, x, finite, r, "cos" if cosine else "sin")


def _large_arguments_via_libm(b, x, small, fast, name):
    """Lanes with |x| >= 8192 (rare) take libm's exact reduction, behind a branch; NaN stays NaN."""
    big = b.and_(b.not_(small), b.fcmp_ordered("ord", x, x))
    any_big = b.call(_reduce_or(b, big.type), [big]) if isinstance(big.type, ir.VectorType) else big
    slot = entry_alloca(b, fast.type)
    b.store(fast, slot)
    with b.if_then(any_big, likely=False):
        b.store(b.select(big, libm(b, name, x), fast), slot)
    return b.select(b.fcmp_unordered("uno", x, x), x, b.load(slot))


def _reduce_or(b, mask_type):
    name = f"llvm.vector.reduce.or.v{mask_type.count}i1"
    return b.module.globals.get(name) or ir.Function(b.module, ir.FunctionType(ir.IntType(1), [mask_type]), name)


def libm(b: ir.IRBuilder, name: str, *args):
    """Call a libm function per lane (f64, and sin/cos): correct, not fast."""
    t = args[0].type
    elem = t.element if isinstance(t, ir.VectorType) else t
    fname = name if elem != F32 else name + "f"
    fn = b.module.globals.get(fname) or ir.Function(b.module, ir.FunctionType(elem, [elem] * len(args)), fname)
    if not isinstance(t, ir.VectorType):
        return b.call(fn, list(args))
    out = ir.Constant(t, ir.Undefined)
    for lane in range(t.count):
        vals = [b.extract_element(a, ir.Constant(I32, lane)) for a in args]
        out = b.insert_element(out, b.call(fn, vals), ir.Constant(I32, lane))
    return out
