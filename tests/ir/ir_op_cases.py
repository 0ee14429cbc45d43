"""The table of reference-vs-oracle cases: every op in OPS, several shapes each.

A case names the op, its operand arrays, attributes, the independent oracle, which operands
carry the symbolic batch N, and the tolerance. Odd sizes (3, 5, 7, 13) are the norm.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kcompile.ir import GraphBuilder, TensorType

import ir_oracles as o
import ir_oracles_nn as nn
import ir_oracles_quant as q
from ir_util import rand


@dataclass
class Case:
    op: str
    arrays: list
    attrs: dict = field(default_factory=dict)
    oracle: object = None
    batched: tuple = (0,)      # operands whose leading dimension becomes N in the symbolic run
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def id(self) -> str:
        shapes = "x".join(str(list(a.shape)).replace(" ", "") for a in self.arrays)
        return f"{self.op}-{shapes}-{self.arrays[0].dtype if self.arrays else 'none'}"


RNG = np.random.default_rng(1234)
CASES: list = []


def case(op, arrays, oracle, attrs=None, **kw):
    CASES.append(Case(op, arrays, attrs or {}, oracle, **kw))


# -- elementwise -------------------------------------------------------------------------
DOMAINS = {"log": (0.1, 3.0), "sqrt": (0.0, 3.0), "rsqrt": (0.1, 3.0), "reciprocal": (0.5, 2.0),
           "log1p": (-0.5, 3.0)}
for op in o.UNARY:
    lo, hi = DOMAINS.get(op, (-3.0, 3.0))
    if op == "logical_not":
        case(op, [rand(RNG, (5, 7), "bool")], o.unary(op))
        continue
    case(op, [rand(RNG, (5, 7), lo=lo, hi=hi)], o.unary(op))
    f64_tol = 1e-9 if op == "erf" else 1e-12  # the erf oracle integrates numerically
    case(op, [rand(RNG, (3, 2, 13), "f64", lo=lo, hi=hi)], o.unary(op), rtol=f64_tol, atol=f64_tol)
    case(op, [rand(RNG, (), lo=lo, hi=hi)], o.unary(op), batched=())
for op in ("neg", "abs", "sign", "square", "relu"):
    case(op, [rand(RNG, (3, 5), "i32", lo=-9, hi=9)], o.unary(op))
    case(op, [rand(RNG, (7,), "i8", lo=-9, hi=9)], o.unary(op))
case("round", [np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -2.6], np.float32)], o.unary("round"))
case("reciprocal", [rand(RNG, (4, 3), lo=-2.0, hi=-0.5)], o.unary("reciprocal"))

BINARY_SHAPES = [((5, 7), (5, 7), (0, 1)), ((3, 4), (4,), (0,)), ((3, 1, 5), (4, 1), (0,)),
                 ((1, 6), (3, 6), (1,)), ((7, 3), (), (0,))]
for op in o.BINARY:
    kind = "bool" if op.startswith("logical") else "f32"
    lo, hi = (0.2, 3.0) if op == "pow" else (-3.0, 3.0)
    for sa, sb, batched in BINARY_SHAPES:
        a, b = rand(RNG, sa, kind, lo, hi), rand(RNG, sb, kind, lo, hi)
        if op == "div":
            b = np.where(np.abs(b) < 0.3, np.float32(0.7), b)
        if op in o.COMPARISONS and kind == "f32":  # ties matter for comparisons
            a, b = np.round(a), np.round(b)
        case(op, [a, b], o.binary(op), batched=batched)
for op in ("add", "sub", "mul", "maximum", "minimum", "less", "equal", "greater_equal"):
    case(op, [rand(RNG, (4, 5), "i32", -9, 9), rand(RNG, (5,), "i32", -9, 9)], o.binary(op))
    case(op, [rand(RNG, (3, 3), "i64", -9, 9), rand(RNG, (3, 3), "i64", -9, 9)], o.binary(op), batched=(0, 1))
    case(op, [rand(RNG, (2, 3), "u8", 5, 9), rand(RNG, (2, 3), "u8", 0, 5)], o.binary(op), batched=(0, 1))
for op in ("div", "pow", "mul"):
    case(op, [rand(RNG, (3, 5), "f64", 0.5, 2), rand(RNG, (5,), "f64", 0.5, 2)], o.binary(op), rtol=1e-12)
case("equal", [rand(RNG, (3, 4), "bool"), rand(RNG, (3, 4), "bool")], o.binary("equal"), batched=(0, 1))
case("not_equal", [rand(RNG, (3, 4), "bool"), rand(RNG, (4,), "bool")], o.binary("not_equal"))

case("where", [rand(RNG, (4, 5), "bool"), rand(RNG, (4, 5)), rand(RNG, (4, 5))], o.where, batched=(0, 1, 2))
case("where", [rand(RNG, (3, 1), "bool"), rand(RNG, (3, 6)), rand(RNG, (6,))], o.where, batched=(0, 1))
case("where", [rand(RNG, (5,), "bool"), rand(RNG, (), "i32", -5, 5), rand(RNG, (2, 5), "i32", -5, 5)], o.where,
     batched=())
for src, dst in (("f32", "i32"), ("f32", "f64"), ("f64", "f32"), ("i32", "f32"), ("bool", "f32"),
                 ("f32", "bool"), ("i64", "i8"), ("u8", "i32"), ("f32", "u8")):
    lo = 0 if dst == "u8" else -9
    case("cast", [rand(RNG, (3, 5), src, lo, 9)], o.cast, {"dtype": dst})
for value in (np.arange(6, dtype=np.float32).reshape(2, 3) / 7, np.array([[True], [False]]),
              np.array(-3, np.int64), np.array([0.1, -0.0, 1e300], np.float64)):
    case("constant", [], o.constant, {"value": value}, batched=())

# -- reductions --------------------------------------------------------------------------
for op in o.REDUCERS:
    lo = 0.5 if op == "reduce_prod" else -2.0
    case(op, [rand(RNG, (5, 7), lo=lo)], o.reduce(op), {"axes": (1,)})
    case(op, [rand(RNG, (3, 4, 5), lo=lo)], o.reduce(op), {"axes": (-1, 1), "keepdims": True})
    case(op, [rand(RNG, (3, 4), lo=lo)], o.reduce(op), {}, batched=())
    case(op, [rand(RNG, (2, 3, 5), "f64", lo=lo)], o.reduce(op), {"axes": (0, 2)}, batched=(), rtol=1e-12)
    case(op, [rand(RNG, (4, 3), "i32", -5, 5)], o.reduce(op), {"axes": (1,), "keepdims": True})
for op in ("argmax", "argmin"):
    case(op, [rand(RNG, (5, 7))], o.arg_reduce(op))
    case(op, [rand(RNG, (3, 4, 5))], o.arg_reduce(op), {"axis": 1, "keepdims": True})
    case(op, [np.round(rand(RNG, (6, 4), lo=-1, hi=1))], o.arg_reduce(op))  # ties: first wins
    case(op, [rand(RNG, (4, 3), "i32", -2, 2)], o.arg_reduce(op), {"axis": 0}, batched=())

# -- matmul ------------------------------------------------------------------------------
for sa, sb, attrs, batched in [((5, 3), (3, 7), {}, (0,)), ((2, 4, 3), (3, 5), {}, (0,)),
                               ((3, 5), (4, 5), {"transpose_b": True}, (0,)),
                               ((5, 3), (5, 2), {"transpose_a": True}, ()),
                               ((2, 1, 3, 4), (5, 4, 3), {"transpose_a": True, "transpose_b": True}, (0,)),
                               ((4, 2, 3), (4, 3, 2), {}, (0, 1))]:
    case("matmul", [rand(RNG, sa), rand(RNG, sb)], o.matmul, attrs, batched=batched)
case("matmul", [rand(RNG, (3, 4), "i32", -3, 3), rand(RNG, (4, 2), "i32", -3, 3)], o.matmul)
case("matmul", [rand(RNG, (3, 4), "f64"), rand(RNG, (4, 2), "f64")], o.matmul, rtol=1e-12)

# -- layout ------------------------------------------------------------------------------
case("transpose", [rand(RNG, (3, 4, 5))], o.transpose, {"perm": (0, 2, 1)})
case("transpose", [rand(RNG, (3, 4, 5), "i32")], o.transpose, {"perm": (2, 0, 1)}, batched=())
case("transpose", [rand(RNG, (2, 3, 1, 5), "bool")], o.transpose, {"perm": (0, 3, 1, 2)})
case("reshape", [rand(RNG, (3, 4, 5))], o.reshape, {"shape": ("N", 20)})
case("reshape", [rand(RNG, (3, 4, 5))], o.reshape, {"shape": ("N", -1, 2)})
case("reshape", [rand(RNG, (6, 5), "i64")], o.reshape, {"shape": (5, 2, 3)}, batched=())
case("reshape", [rand(RNG, (6, 5))], o.reshape, {"shape": (-1,)}, batched=())
case("broadcast_to", [rand(RNG, (3, 1))], o.broadcast_to, {"shape": ("N", 4)})
case("broadcast_to", [rand(RNG, (5,))], o.broadcast_to, {"shape": ("N", 2, 5)}, batched=())
case("broadcast_to", [rand(RNG, (1, 3), "i32")], o.broadcast_to, {"shape": (2, 4, 3)}, batched=())
case("expand_dims", [rand(RNG, (3, 4))], o.expand_dims, {"axes": (1,)})
case("expand_dims", [rand(RNG, (3, 4))], o.expand_dims, {"axes": (-1, 1)})
case("expand_dims", [rand(RNG, (5,), "bool")], o.expand_dims, {"axes": (0,)}, batched=())
case("squeeze", [rand(RNG, (3, 1, 4, 1))], o.squeeze, {"axes": (1, -1)})
case("squeeze", [rand(RNG, (1, 5), "i8")], o.squeeze, {"axes": (0,)}, batched=())
case("concat", [rand(RNG, (3, 2)), rand(RNG, (3, 5)), rand(RNG, (3, 1))], o.concat, {"axis": 1},
     batched=(0, 1, 2))
case("concat", [rand(RNG, (2, 3)), rand(RNG, (4, 3))], o.concat, {"axis": 0}, batched=())
case("concat", [rand(RNG, (3, 2, 4), "i32")], o.concat, {"axis": -1})
case("split", [rand(RNG, (3, 7))], o.split, {"axis": 1, "sections": (2, 0, 5)})
case("split", [rand(RNG, (6, 4), "i64")], o.split, {"axis": 0, "sections": (1, 5)}, batched=())
case("split", [rand(RNG, (2, 3, 4))], o.split, {"sections": (4,)})
case("slice", [rand(RNG, (3, 10))], o.slice_, {"axes": (1,), "starts": (1,), "ends": (8,), "steps": (3,)})
case("slice", [rand(RNG, (4, 5, 6))], o.slice_, {"axes": (-1, 1), "starts": (-4, 0), "ends": (100, -1)})
case("slice", [rand(RNG, (7, 3), "i32")], o.slice_, {"axes": (0,), "starts": (5,), "ends": (2,)}, batched=())
case("pad", [rand(RNG, (3, 4))], o.pad, {"pads": (0, 0, 1, 2)})
case("pad", [rand(RNG, (2, 3, 4))], o.pad, {"pads": (1, 0, 0, 2, 3, 1), "value": -1.5}, batched=())
case("pad", [rand(RNG, (3, 2), "i32", -5, 5)], o.pad, {"pads": (0, 0, 2, 2), "value": 7.0})

# -- indexing ----------------------------------------------------------------------------
case("gather", [rand(RNG, (11, 4)), rand(RNG, (3, 5), "i32", 0, 10)], o.gather, batched=(1,))
case("gather", [rand(RNG, (3, 7)), rand(RNG, (4,), "i64", 0, 6)], o.gather, {"axis": 1})
case("gather", [rand(RNG, (2, 5, 3), "i32", -9, 9), rand(RNG, (), "i64", 0, 2)], o.gather, {"axis": -1},
     batched=())
case("scatter_add", [rand(RNG, (6,), "i32", 0, 3), rand(RNG, (6, 2))], o.scatter_add, {"shape": (4, 2)},
     batched=())
case("scatter_add", [rand(RNG, (2, 3), "i64", 0, 4), rand(RNG, (3, 2, 3))], o.scatter_add,
     {"shape": (3, 5), "axis": 1}, batched=())
case("one_hot", [rand(RNG, (5,), "i32", -1, 4)], o.one_hot, {"depth": 4})
case("one_hot", [rand(RNG, (3, 2), "i64", 0, 6)], o.one_hot, {"depth": 6, "dtype": "i32"})

# -- nn ----------------------------------------------------------------------------------
for shape, axis in (((4, 7), -1), ((3, 5, 2), 1), ((3, 4), 0)):
    for op, oracle in (("softmax", nn.softmax), ("log_softmax", nn.log_softmax)):
        case(op, [rand(RNG, shape, lo=-4, hi=4)], oracle, {"axis": axis}, batched=() if axis == 0 else (0,))
case("softmax", [rand(RNG, (3, 6), "f64")], nn.softmax, rtol=1e-12)

CONV2D = [((2, 5, 6, 3), (3, 3, 3, 4), {}),
          ((2, 7, 5, 2), (3, 2, 2, 3), {"padding": "same"}),
          ((1, 8, 7, 2), (3, 3, 2, 2), {"padding": "same", "strides": (2, 3)}),
          ((2, 9, 8, 3), (2, 3, 3, 2), {"strides": (2, 2), "dilations": (1, 2)}),
          ((1, 6, 6, 4), (3, 3, 1, 4), {"padding": "same", "groups": 4}),
          ((2, 5, 5, 4), (2, 2, 2, 6), {"groups": 2, "dilations": (2, 1), "padding": "same"}),
          ((1, 2, 3, 2), (3, 4, 2, 2), {"padding": "same"}),                   # kernel wider than the input
          ((2, 8, 7, 1), (2, 2, 1, 3), {"strides": (3, 3)})]                   # stride beyond the kernel
for xs, ws, attrs in CONV2D:
    x, w = rand(RNG, xs), rand(RNG, ws)
    case("conv2d", [x, w], nn.conv2d, attrs, atol=1e-5)
    dy = rand(RNG, nn.conv2d([x, w], attrs)[0].shape)
    case("conv2d_input_grad", [dy, w], nn.conv2d_input_grad, {**attrs, "input_shape": ("N",) + xs[1:]}, atol=1e-5)
    case("conv2d_filter_grad", [x, dy], nn.conv2d_filter_grad, {**attrs, "filter_shape": ws}, batched=(0, 1),
         atol=1e-5)
case("conv2d", [rand(RNG, (2, 4, 4, 2), "f64"), rand(RNG, (3, 3, 2, 3), "f64")], nn.conv2d, {"padding": "same"},
     rtol=1e-12)
for xs, ws, attrs in [((2, 9, 3), (3, 3, 4), {}), ((2, 8, 2), (4, 2, 3), {"padding": "same", "strides": 3}),
                      ((3, 7, 2), (3, 2, 2), {"padding": "causal", "dilations": 2}),
                      ((1, 10, 4), (2, 2, 6), {"groups": 2, "strides": 2, "padding": "causal"}),
                      ((2, 6, 3), (5, 1, 3), {"groups": 3, "padding": "same"})]:
    case("conv1d", [rand(RNG, xs), rand(RNG, ws)], nn.conv1d, attrs, atol=1e-5)

POOL2D = [((2, 6, 7, 3), {"pool_size": (2, 2), "strides": (2, 2)}),
          ((2, 5, 7, 2), {"pool_size": (3, 2), "strides": (2, 3), "padding": "same"}),
          ((1, 7, 6, 2), {"pool_size": (3, 3), "strides": (1, 1), "padding": "same"}),
          ((2, 8, 5, 1), {"pool_size": (2, 3), "strides": (3, 1)}),
          ((1, 2, 3, 2), {"pool_size": (3, 4), "strides": (1, 2), "padding": "same"}),  # window wider than input
          ((2, 9, 7, 1), {"pool_size": (2, 2), "strides": (4, 3)})]                     # stride beyond the window
for xs, attrs in POOL2D:
    x = rand(RNG, xs)
    case("max_pool2d", [x], nn.max_pool2d, attrs)
    case("avg_pool2d", [x], nn.avg_pool2d, attrs)
    dy = rand(RNG, nn.max_pool2d([x], attrs)[0].shape)
    case("max_pool2d_grad", [x, dy], nn.max_pool2d_grad, attrs, batched=(0, 1))
    case("avg_pool2d_grad", [dy], nn.avg_pool2d_grad, {**attrs, "input_shape": ("N",) + xs[1:]})
for xs, attrs in POOL2D[:3]:   # 8-bit max pooling (the int8 graphs' pools), the extremes included
    case("max_pool2d", [rand(RNG, xs, "i8", -128, 127)], nn.max_pool2d, attrs)
    case("max_pool2d", [rand(RNG, xs, "u8", 0, 255)], nn.max_pool2d, attrs)
case("max_pool1d", [rand(RNG, (2, 7, 3), "i8", -128, 127)], nn.pool1d(nn.max_pool2d),
     {"pool_size": (3,), "strides": (2,), "padding": "same"})
TIES = np.array([[1, 3, 3], [3, 0, 1], [2, 3, 3]], np.float32).reshape(1, 3, 3, 1)
case("max_pool2d_grad", [TIES, np.ones((1, 2, 2, 1), np.float32)], nn.max_pool2d_grad,
     {"pool_size": (2, 2), "strides": (1, 1)}, batched=(0, 1))
for xs, attrs in [((2, 9, 3), {"pool_size": (2,), "strides": (2,)}),
                  ((3, 7, 2), {"pool_size": (3,), "strides": (2,), "padding": "same"}),
                  ((1, 5, 4), {"pool_size": (4,), "strides": (1,), "padding": "same"})]:
    x = rand(RNG, xs)
    case("max_pool1d", [x], nn.pool1d(nn.max_pool2d), attrs)
    case("avg_pool1d", [x], nn.pool1d(nn.avg_pool2d), attrs)

for shape, seed, counter in (((4, 5), 0, 0), ((3, 7), 42, 12345), ((2, 3, 5), 7, 2**40 + 3)):
    case("random_uniform_like", [rand(RNG, shape), np.array(counter, np.int64)], nn.random_uniform_like,
         {"seed": seed}, rtol=0, atol=0)


# one process (no summing hook installed): the sum over a world of one is x itself
for dt in ("f32", "f64"):
    case("cross_process_sum", [rand(RNG, (3, 7), dt)], lambda xs, attrs: [xs[0].copy()], rtol=0, atol=0)


# -- fused (a region the fuse pass outlined; static shapes: the region's types are fixed) ----------
def _region(name, types, body):
    rb = GraphBuilder(name)
    return rb.build([body(rb, *[rb.input(f"x{i}", TensorType(t)) for i, t in enumerate(types)])], ["y"])


case("fused", [rand(RNG, (3, 5)), rand(RNG, (5,))], lambda xs, a: [np.tanh(xs[0] * xs[1] + np.float32(1))],
     {"body": _region("loop", [(3, 5), (5,)], lambda b, x, s: b.tanh(b.add(b.mul(x, s), b.constant(1.0))))},
     batched=())
case("fused", [rand(RNG, (4, 3)), rand(RNG, (3, 6)), rand(RNG, (6,))],
     lambda xs, a: [np.maximum(xs[0] @ xs[1] + xs[2], 0) * np.float32(0.5)],
     {"body": _region("epilogue", [(4, 3), (3, 6), (6,)],
                      lambda b, x, w, c: b.mul(b.relu(b.add(b.matmul(x, w), c)), b.constant(0.5))),
      "kind": "epilogue", "bias": 2, "activation": "relu", "in_kernel": 2}, batched=())
case("fused", [rand(RNG, (4, 5))], lambda xs, a: [np.sum(np.square(xs[0]), axis=1)],
     {"body": _region("prologue", [(4, 5)], lambda b, x: b.reduce_sum(b.square(x), axes=(1,))), "kind": "prologue"},
     batched=())

# -- quantization (edge values: exact .5 ties, saturation both ways, NaN, +-inf) -----------
QEDGE = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e6, -1e6, np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
for zdt, zp in (("i8", np.int8(-3)), ("u8", np.uint8(128))):
    case("quantize", [np.concatenate([QEDGE, rand(RNG, (8,), lo=-60, hi=60)]), np.array(1.0, np.float32),
                      np.array(zp)], q.quantize, batched=())
    case("quantize", [rand(RNG, (5, 7), lo=-40, hi=40), np.array(0.37, np.float32), np.array(zp)], q.quantize)
    case("quantize", [rand(RNG, (3, 5, 7), lo=-9, hi=9), rand(RNG, (7,), lo=0.02, hi=0.2),
                      rand(RNG, (7,), zdt, -5 if zdt == "i8" else 120, 5 if zdt == "i8" else 135)], q.quantize)
    case("quantize", [rand(RNG, (4, 6, 3), lo=-9, hi=9), rand(RNG, (6,), lo=0.02, hi=0.2), np.zeros((6,), zp.dtype)],
         q.quantize, {"axis": 1})
    qx = rand(RNG, (5, 7), zdt, -128, 255)
    case("dequantize", [qx, np.array(0.05, np.float32), np.array(zp)], q.dequantize)
    case("dequantize", [rand(RNG, (3, 4, 6), zdt, -128, 255), rand(RNG, (4,), lo=0.01, hi=2.0),
                        rand(RNG, (4,), zdt, -4, 200)], q.dequantize, {"axis": 1})
    case("requantize", [rand(RNG, (6, 9), "i32", -90000, 90000), np.array(0.0013, np.float32), np.array(zp)],
         q.requantize)
    case("requantize", [rand(RNG, (2, 3, 5), "i32", -5000, 5000), rand(RNG, (5,), lo=0.001, hi=0.05),
                        np.array(zp)], q.requantize, {"relu": True})
    case("matmul_integer", [rand(RNG, (5, 13), zdt, -128, 255), rand(RNG, (13, 7), "i8", -128, 127),
                            np.array(zp), np.array(-7, np.int8)], q.matmul_integer)
    case("matmul_integer", [rand(RNG, (2, 3, 17), zdt, -128, 255), rand(RNG, (17, 5), "i8", -128, 127),
                            np.array(zp // 3), rand(RNG, (5,), "i8", -128, 127)], q.matmul_integer)
    for xs, ws, attrs in CONV2D[:6]:
        case("conv2d_integer", [rand(RNG, xs, zdt, -128, 255), rand(RNG, ws, "i8", -128, 127), np.array(zp),
                                rand(RNG, ws[3:], "i8", -9, 9) if attrs.get("groups") else np.array(3, np.int8)],
             q.conv2d_integer, attrs)
case("dequantize", [rand(RNG, (4, 5), "i32", -2**31, 2**31 - 1), rand(RNG, (5,), lo=1e-4, hi=1e-2),
                    np.zeros((5,), np.int32)], q.dequantize)
case("requantize", [np.array([-2**31, 2**31 - 1, 0, 1, -1, 5, -5, 15, -15, 25], np.int32), np.array(0.1, np.float32),
                    np.array(0, np.int8)], q.requantize, batched=())
case("requantize", [np.array([2**31 - 1, 7, 3], np.int32), np.array([np.inf, 0.0, np.nan], np.float32),
                    np.array(100, np.uint8)], q.requantize, batched=())
case("matmul_integer", [np.full((3, 300), 255, np.uint8), np.full((300, 4), -128, np.int8), np.array(0, np.uint8),
                        np.array(127, np.int8)], q.matmul_integer)  # |sum| > 2^24: exactness in i32

# -- fake_quantize (QAT): per tensor and per channel, narrow, an empty range, a range not holding 0 -----
import ir_oracles_qat as qat  # noqa: E402

case("fake_quantize", [rand(RNG, (5, 7), lo=-3, hi=3), np.array(-1.3, np.float32), np.array(2.2, np.float32)],
     qat.fake_quantize)
case("fake_quantize", [rand(RNG, (3, 4, 6), lo=-3, hi=3), rand(RNG, (6,), lo=-2, hi=-0.1), rand(RNG, (6,), lo=0.1, hi=2)],
     qat.fake_quantize, {"narrow": True})
case("fake_quantize", [rand(RNG, (4, 3), lo=-3, hi=3), np.array([0.0, 0.5, -1.0], np.float32),
                       np.array([0.0, 2.0, -0.5], np.float32)], qat.fake_quantize)

import ir_oracles_control as ctl  # noqa: E402  (scan: static shapes, as the bodies are typed)
for reverse in (False, True):
    case("scan", [rand(RNG, (3, 4)), rand(RNG, (3, 5, 2)), rand(RNG, (2, 4)), rand(RNG, (4, 4), lo=-0.5, hi=0.5)],
         ctl.rnn, {"body": ctl.rnn_cell(3, 2, 4), "num_carries": 1, "axis": 1, "reverse": reverse}, batched=())
    case("scan", [rand(RNG, (7,)), np.array(2, np.int32), rand(RNG, (6, 7))], ctl.cumulative,
         {"body": ctl.running_sum(7), "num_carries": 2, "reverse": reverse}, batched=())
# -- sparse_matmul: random block structures (repeated blocks add up, empty block columns) ------------
import ir_oracles_sparse as sp  # noqa: E402
from kcompile.ir.ops.sparse import from_dense_windows  # noqa: E402  (a sparse_qmatmul case's inputs)

for a_shape, block, nblocks in (((5, 7), (1, 1), 11), ((3, 2, 6), (2, 3), 5), ((4, 8), (4, 2), 0)):
    n = 6 if block[1] != 1 else 5
    case("sparse_matmul", [rand(RNG, a_shape), *sp.random_structure(RNG, a_shape[-1], n, block, nblocks)],
         sp.sparse_matmul, {"block": block}, rtol=1e-5, atol=1e-5)
for a_shape, n, steps in (((3, 40), 21, 9), ((2, 2, 7), 5, 0)):   # windows layout: partial window and panel
    case("sparse_matmul", [rand(RNG, a_shape), *sp.random_windows(RNG, a_shape[-1], n, (32, 16), steps)],
         sp.sparse_matmul, {"block": (32, 16), "layout": "windows", "n": n}, rtol=1e-5, atol=1e-5)
# sparse_qmatmul: u8 and i8 inputs, partial windows and panels, an empty kernel, |sum| > 2^24 (i32 exactness)
for a_shape, dt, n, steps in (((3, 70), "u8", 21, 9), ((2, 2, 7), "i8", 5, 0), ((2, 130), "i8", 17, 12)):
    case("sparse_qmatmul", [rand(RNG, a_shape, dt, *((0, 255) if dt == "u8" else (-128, 127))),
                            *sp.random_windows(RNG, a_shape[-1], n, (128, 16, 4), steps, int8=True),
                            rand(RNG, (), dt, *((0, 255) if dt == "u8" else (-128, 127)))],
         sp.sparse_qmatmul, {"block": (128, 16, 4), "layout": "windows", "n": n})
w8 = np.full((600, 4), -128, np.int8)
case("sparse_qmatmul", [np.full((3, 600), 255, np.uint8), *from_dense_windows(w8, (128, 16, 4)), np.array(0, np.uint8)],
     sp.sparse_qmatmul, {"block": (128, 16, 4), "layout": "windows", "n": 4})
# patches (im2col of a pruned convolution): 2-D and 1-D, strides, dilations, both paddings
for shape, attrs in (((2, 7, 6, 3), {"kernel": (3, 2), "strides": (2, 1), "dilations": (1, 2), "padding": "same"}),
                     ((2, 5, 5, 2), {"kernel": (3, 3), "strides": (1, 1), "dilations": (1, 1), "padding": "valid"}),
                     ((3, 9, 4), {"kernel": (3,), "strides": (2,), "dilations": (2,), "padding": "same"})):
    case("patches", [rand(RNG, shape)], sp.patches, attrs)
case("patches", [rand(RNG, (2, 5, 6, 3), "u8", 0, 255)], sp.patches,   # int8 conv: pads with the zero point
     {"kernel": (3, 3), "strides": (2, 1), "dilations": (1, 1), "padding": "same", "pad_value": 131})
case("patches", [rand(RNG, (2, 7, 2), "i8", -128, 127)], sp.patches,
     {"kernel": (2,), "strides": (1,), "dilations": (3,), "padding": "same", "pad_value": -5})

# -- stop_gradient, cumsum, top_k ----------------------------------------------------------------
import ir_oracles_along_axis as ax_o  # noqa: E402

case("stop_gradient", [rand(RNG, (3, 5))], ax_o.stop_gradient)
case("stop_gradient", [rand(RNG, (4,), "i32", -9, 9)], ax_o.stop_gradient, batched=())
for shape, attrs in (((3, 7), {}), ((4, 5, 3), {"axis": 1, "reverse": True}), ((2, 6), {"axis": 0}),
                     ((3, 2, 5), {"axis": -1, "reverse": True})):
    case("cumsum", [rand(RNG, shape)], ax_o.cumsum, attrs, batched=() if attrs.get("axis") == 0 else (0,))
case("cumsum", [rand(RNG, (3, 4), "i32", -9, 9)], ax_o.cumsum, {"axis": 1})
case("cumsum", [rand(RNG, (5, 3), "f64")], ax_o.cumsum, {"axis": 0, "reverse": True}, batched=(), rtol=1e-12)
case("top_k", [rand(RNG, (3, 13))], ax_o.top_k, {"k": 4})
case("top_k", [rand(RNG, (2, 3, 7))], ax_o.top_k, {"k": 7})
case("top_k", [np.round(rand(RNG, (4, 9), lo=-2, hi=2))], ax_o.top_k, {"k": 5})   # ties: lower index first
case("top_k", [rand(RNG, (5, 6), "i32", -3, 3)], ax_o.top_k, {"k": 2})
case("top_k", [rand(RNG, (11,))], ax_o.top_k, {"k": 1}, batched=())

# -- image ops: resize up and down (odd sizes), affine_transform in every fill mode --------------
import ir_oracles_image as img  # noqa: E402

for size, interp in (((11, 4), "bilinear"), ((3, 13), "bilinear"), ((5, 9), "nearest"), ((2, 3), "nearest")):
    case("resize", [rand(RNG, (2, 5, 7, 3))], img.resize, {"size": size, "interpolation": interp}, atol=1e-5)


def _warps(n, projective=True):
    """Rotations, scales, shears and shifts around the image; small projective terms when asked."""
    t = np.zeros((n, 8), np.float32)
    for k in range(n):
        a, s = RNG.uniform(-3.2, 3.2), RNG.uniform(0.6, 1.6)
        t[k, :6] = [s * np.cos(a), -s * np.sin(a) + 0.1, RNG.uniform(-8, 8), s * np.sin(a), s * np.cos(a),
                    RNG.uniform(-8, 8)]
        t[k, 6:] = RNG.uniform(-0.02, 0.02, 2) if projective else 0
    return t


# dyadic transforms keep every source point exact in float32, so nearest's ties (x.5) are tested exactly
DYADIC = np.array([[0.75, -0.5, 1.25, 0.5, 1.5, -2.5, 0, 0], [-1, 0, 6.5, 0, 1, 0.5, 0, 0],
                   [0.5, 0, -3.5, 0, -0.5, 7.5, 0, 0]], np.float32)
for mode in ("constant", "nearest", "mirror", "reflect"):   # wrap (no ONNX form): tests/ir/test_ir_image.py
    case("affine_transform", [rand(RNG, (3, 6, 7, 2)), _warps(3)], img.affine_transform,
         {"fill_mode": mode, "fill_value": 0.5}, batched=(0, 1), rtol=1e-5, atol=1e-5)
    case("affine_transform", [rand(RNG, (3, 5, 6, 2)), DYADIC], img.affine_transform,
         {"fill_mode": mode, "interpolation": "nearest", "fill_value": -1.0}, batched=(0, 1), rtol=0, atol=0)
case("affine_transform", [rand(RNG, (2, 1, 5, 2)), _warps(1)[0]], img.affine_transform, {"fill_mode": "mirror"},
     rtol=1e-5, atol=1e-5)
# -- conv2d_transpose: Keras output sizes for each padding, with and without output_padding -------------------
# (the first case has stride 1: the native pipeline keeps it a conv2d_transpose, whose kernel takes the fused
# epilogue that tests/compiler/test_op_traits.py checks on each anchor's first case; strided ones become
# stride-1 phase convs, passes/subpixel.py)
import ir_oracles_conv_transpose as ct  # noqa: E402

for xs, ws, attrs in [((1, 5, 4, 2), (3, 2, 3, 2), {"dilations": (2, 1), "padding": "same"}),
                      ((2, 4, 5, 3), (3, 3, 2, 3), {"strides": (2, 2), "padding": "same"}),
                      ((1, 3, 4, 2), (4, 2, 3, 2), {"strides": (2, 3), "padding": "same", "output_padding": (1, 2)}),
                      ((2, 3, 3, 3), (2, 3, 4, 3), {"strides": (3, 2), "output_padding": (2, 0)}),
                      ((2, 4, 3, 1), (1, 1, 2, 1), {"strides": (2, 2)})]:           # stride beyond the kernel
    case("conv2d_transpose", [rand(RNG, xs), rand(RNG, ws)], ct.conv2d_transpose, attrs, atol=1e-5)
