"""Independent formulations of the elementwise, reduction, layout and index ops.

They loop over indices in plain Python (math module, explicit broadcasting rules) rather than
calling the NumPy function each reference implementation uses, so a shared mistake is unlikely.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from kcompile.ir import dtype as ir_dtype


# -- broadcasting by hand ----------------------------------------------------------------
def broadcast_shape(*shapes) -> tuple:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        big = {d for d in dims if d != 1}
        assert len(big) <= 1, f"shapes {shapes} do not broadcast"
        out.append(big.pop() if big else 1)
    return tuple(out)


def pick(a: np.ndarray, idx: tuple):
    """The element of `a` that broadcasting maps to output index `idx`, as a Python scalar."""
    off = len(idx) - a.ndim
    return a[tuple(0 if a.shape[k] == 1 else idx[off + k] for k in range(a.ndim))].item()


def elementwise(fn, arrays, dtype, shape=None) -> np.ndarray:
    shape = broadcast_shape(*(a.shape for a in arrays)) if shape is None else tuple(shape)
    out = np.empty(shape, dtype)
    for idx in np.ndindex(*shape):
        out[idx] = fn(*(pick(a, idx) for a in arrays))
    return out


def _erf(x: float) -> float:
    """erf by Simpson's rule on 2/sqrt(pi) * exp(-t^2) (error far below f32 precision)."""
    n = 400
    h = x / n
    s = sum((1 if k in (0, n) else 4 if k % 2 else 2) * math.exp(-(k * h) ** 2) for k in range(n + 1))
    return 2 / math.sqrt(math.pi) * s * h / 3


UNARY = {
    "neg": lambda x: -x,
    "abs": abs,
    "sign": lambda x: (x > 0) - (x < 0),
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "rsqrt": lambda x: 1 / math.sqrt(x),
    "square": lambda x: x * x,
    "reciprocal": lambda x: 1 / x,
    "tanh": math.tanh,
    "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
    "relu": lambda x: x if x > 0 else 0,
    "erf": _erf,
    "softplus": lambda x: math.log(1 + math.exp(x)),
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,  # Python rounds half to even, like Keras
    "sin": math.sin,
    "cos": math.cos,
    "log1p": math.log1p,
    "expm1": math.expm1,
    "logical_not": lambda x: not x,
}

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": max,
    "minimum": min,
    "equal": lambda a, b: a == b,
    "not_equal": lambda a, b: a != b,
    "less": lambda a, b: a < b,
    "less_equal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b,
    "greater_equal": lambda a, b: a >= b,
    "logical_and": lambda a, b: a and b,
    "logical_or": lambda a, b: a or b,
}
COMPARISONS = {"equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or"}


def unary(op):
    return lambda xs, attrs: [elementwise(UNARY[op], xs, xs[0].dtype)]


def binary(op):
    dtype = (lambda xs: np.bool_) if op in COMPARISONS else (lambda xs: xs[0].dtype)
    return lambda xs, attrs: [elementwise(BINARY[op], xs, dtype(xs))]


def where(xs, attrs):
    return [elementwise(lambda c, a, b: a if c else b, xs, xs[1].dtype)]


def cast(xs, attrs):
    to = ir_dtype(attrs["dtype"]).np
    conv = {"b": bool, "i": int, "u": int, "f": float}[np.dtype(to).kind]
    return [elementwise(lambda v: conv(v), xs, to)]  # int() truncates toward zero


# -- reductions --------------------------------------------------------------------------
def _groups(x: np.ndarray, axes):
    """Lists of the elements that reduce together, keyed by the kept index (axes set to 0)."""
    groups: dict = {}
    for idx in np.ndindex(*x.shape):
        key = tuple(0 if d in axes else i for d, i in enumerate(idx))
        groups.setdefault(key, []).append(x[idx].item())
    return groups


def _reduced(x, axes, keepdims, values: dict, dtype):
    full = tuple(1 if d in axes else n for d, n in enumerate(x.shape))
    out = np.empty(full, dtype)
    for key, v in values.items():
        out[key] = v
    return out if keepdims else out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in axes))


REDUCERS = {"reduce_sum": math.fsum, "reduce_mean": lambda v: math.fsum(v) / len(v), "reduce_max": max,
            "reduce_min": min, "reduce_prod": math.prod}


def reduce(op):
    def oracle(xs, attrs):
        x = xs[0]
        axes = {a % x.ndim for a in attrs.get("axes", ())} or set(range(x.ndim))
        fn = REDUCERS[op]
        if x.dtype.kind in "iu" and op == "reduce_sum":
            fn = sum
        values = {k: fn(v) for k, v in _groups(x, axes).items()}
        return [_reduced(x, axes, attrs.get("keepdims", False), values, x.dtype)]
    return oracle


def arg_reduce(op):
    def oracle(xs, attrs):
        x = xs[0]
        axis = attrs.get("axis", -1) % x.ndim
        best = max if op == "argmax" else min
        values = {k: v.index(best(v)) for k, v in _groups(x, {axis}).items()}  # first occurrence
        return [_reduced(x, {axis}, attrs.get("keepdims", False), values, np.int64)]
    return oracle


# -- linear algebra and layout -----------------------------------------------------------
def matmul(xs, attrs):
    a, b = xs
    if attrs.get("transpose_a"):
        a = a.swapaxes(-1, -2)
    if attrs.get("transpose_b"):
        b = b.swapaxes(-1, -2)
    batch = broadcast_shape(a.shape[:-2], b.shape[:-2])
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.empty(batch + (m, n), a.dtype)
    for bi in np.ndindex(*batch):
        for i, j in itertools.product(range(m), range(n)):
            out[bi + (i, j)] = sum(pick(a, bi + (i, t)) * pick(b, bi + (t, j)) for t in range(k))
    return [out]


def transpose(xs, attrs):
    x, perm = xs[0], attrs["perm"]
    out = np.empty(tuple(x.shape[p] for p in perm), x.dtype)
    for idx in np.ndindex(*out.shape):
        src = [0] * x.ndim
        for i, p in enumerate(perm):
            src[p] = idx[i]
        out[idx] = x[tuple(src)]
    return [out]


def refill(x: np.ndarray, shape) -> np.ndarray:
    """x's elements in row-major order, laid out in `shape`."""
    flat = [x[i] for i in np.ndindex(*x.shape)]
    out = np.empty(tuple(shape), x.dtype)
    assert out.size == len(flat), f"cannot lay {x.shape} out as {shape}"
    for k, idx in enumerate(np.ndindex(*out.shape)):
        out[idx] = flat[k]
    return out


def reshape(xs, attrs):
    x = xs[0]
    shape = [x.shape[0] if d == "N" else d for d in attrs["shape"]]
    if -1 in shape:
        shape[shape.index(-1)] = x.size // -math.prod(shape)
    return [refill(x, shape)]


def broadcast_to(xs, attrs):
    shape = [xs[0].shape[0] if d == "N" else d for d in attrs["shape"]]
    return [elementwise(lambda v: v, xs, xs[0].dtype, shape)]


def expand_dims(xs, attrs):
    x = xs[0]
    rank = x.ndim + len(attrs["axes"])
    shape = list(x.shape)
    for a in sorted(a % rank for a in attrs["axes"]):
        shape.insert(a, 1)
    return [refill(x, shape)]


def squeeze(xs, attrs):
    x = xs[0]
    drop = {a % x.ndim for a in attrs["axes"]}
    return [refill(x, [n for d, n in enumerate(x.shape) if d not in drop])]


def concat(xs, attrs):
    ax = attrs.get("axis", -1) % xs[0].ndim
    owner = [(k, i) for k, x in enumerate(xs) for i in range(x.shape[ax])]
    shape = list(xs[0].shape)
    shape[ax] = len(owner)
    out = np.empty(shape, xs[0].dtype)
    for idx in np.ndindex(*shape):
        k, i = owner[idx[ax]]
        out[idx] = xs[k][idx[:ax] + (i,) + idx[ax + 1:]]
    return [out]


def split(xs, attrs):
    x, ax = xs[0], attrs.get("axis", -1) % xs[0].ndim
    outs, start = [], 0
    for size in attrs["sections"]:
        shape = list(x.shape)
        shape[ax] = size
        out = np.empty(shape, x.dtype)
        for idx in np.ndindex(*shape):
            out[idx] = x[idx[:ax] + (start + idx[ax],) + idx[ax + 1:]]
        outs.append(out)
        start += size
    return outs


def slice_(xs, attrs):
    x = xs[0]
    positions = [list(range(n)) for n in x.shape]
    steps = attrs.get("steps") or (1,) * len(attrs["axes"])
    for ax, s, e, st in zip(attrs["axes"], attrs["starts"], attrs["ends"], steps):
        positions[ax % x.ndim] = positions[ax % x.ndim][s:e:st]
    out = np.empty(tuple(len(p) for p in positions), x.dtype)
    for idx in np.ndindex(*out.shape):
        out[idx] = x[tuple(p[i] for p, i in zip(positions, idx))]
    return [out]


def pad(xs, attrs):
    x, p = xs[0], attrs["pads"]
    shape = [n + p[2 * d] + p[2 * d + 1] for d, n in enumerate(x.shape)]
    out = np.full(shape, attrs.get("value", 0.0), x.dtype)
    for idx in np.ndindex(*x.shape):
        out[tuple(i + p[2 * d] for d, i in enumerate(idx))] = x[idx]
    return [out]


# -- indexing ----------------------------------------------------------------------------
def gather(xs, attrs):
    data, ind = xs
    ax = attrs.get("axis", 0) % data.ndim
    out = np.empty(data.shape[:ax] + ind.shape + data.shape[ax + 1:], data.dtype)
    for idx in np.ndindex(*out.shape):
        pre, mid, post = idx[:ax], idx[ax:ax + ind.ndim], idx[ax + ind.ndim:]
        out[idx] = data[pre + (int(ind[mid]),) + post]
    return [out]


def scatter_add(xs, attrs):
    ind, upd = xs
    shape, ax = tuple(attrs["shape"]), attrs.get("axis", 0) % len(attrs["shape"])
    out = np.zeros(shape, upd.dtype)
    for idx in np.ndindex(*upd.shape):
        pre, mid, post = idx[:ax], idx[ax:ax + ind.ndim], idx[ax + ind.ndim:]
        out[pre + (int(ind[mid]),) + post] += upd[idx]
    return [out]


def one_hot(xs, attrs):
    ind, depth = xs[0], attrs["depth"]
    out = np.zeros(ind.shape + (depth,), ir_dtype(attrs.get("dtype", "f32")).np)
    for idx in np.ndindex(*ind.shape):
        if 0 <= ind[idx] < depth:
            out[idx + (int(ind[idx]),)] = 1
    return [out]


def constant(xs, attrs):
    return [attrs["value"]]
