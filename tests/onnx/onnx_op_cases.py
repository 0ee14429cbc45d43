"""One-op test cases for the ONNX exporter: each builds a tiny graph around one registry op."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kcompile.ir import GraphBuilder, TensorType


@dataclass
class Arg:
    """One operand: a graph input (may lead with the batch symbol) or a parameter (static)."""
    shape: tuple
    dtype: str = "f32"
    kind: str = "normal"   # normal | unit | wide | warp | positive | near_one | halves | pow2 | small | ties | bool | index:K | range:LO:HI
    param: bool = False


@dataclass
class Case:
    op: str
    args: list
    attrs: dict = field(default_factory=dict)
    label: str = ""
    unused: list = field(default_factory=list)  # extra graph inputs the op does not read (e.g. to bind N)

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}" if self.label else self.op


def sample(arg: Arg, batch: int, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(batch if isinstance(d, str) else d for d in arg.shape)
    kind = arg.kind
    if kind == "bool":
        return rng.random(shape) < 0.5
    if kind.startswith("index:"):
        a = rng.integers(0, int(kind[6:]), shape)
    elif kind.startswith("range:"):
        lo, hi = map(int, kind[6:].split(":"))
        a = rng.integers(lo, hi, shape)
    elif kind.startswith("offsets:"):  # sparse_matmul block offsets: rising from 0 to the block count
        total = int(kind[8:])
        a = np.sort(rng.integers(0, total + 1, shape))
        a[0], a[-1] = 0, total
    elif kind.startswith("windows:"):  # windows layout offsets: steps per group rising to the total, then the orders
        k, n, groups, steps = map(int, kind[8:].split(":"))
        a = np.concatenate([[0], np.sort(rng.integers(0, steps + 1, groups - 1)), [steps], rng.permutation(k),
                            rng.permutation(n)])
    elif kind == "ties":  # small integers: comparisons and arg reductions meet equal values
        a = rng.integers(-3, 4, shape)
    elif kind == "positive":
        a = rng.uniform(0.1, 3.0, shape)
    elif kind == "near_one":
        a = rng.uniform(0.8, 1.25, shape)
    elif kind == "pow2":  # quantization scales that make ties (x / scale = k + 0.5) exact
        a = rng.choice([0.25, 0.5, 1.0, 2.0], shape)
    elif kind == "halves":  # exact .5 values check round-half-to-even
        a = rng.integers(-8, 8, shape) / 2.0
    elif kind == "small":  # tiny and moderate magnitudes (log1p / expm1 accuracy), all > -1
        a = rng.choice([1e-7, -3e-6, 1e-3, 0.4, -0.6, 2.0, 0.0], shape) * rng.uniform(0.5, 1.0, shape)
    elif kind == "unit":  # |x| <= 1/2: long sums (filter gradients) stay small enough for a 1e-5 bound
        a = rng.uniform(-0.5, 0.5, shape)
    elif kind == "wide":
        a = rng.normal(0, 6, shape)
    elif kind == "warp":  # affine_transform rows: rotation, scale, shift, a small projective part
        a = _warps(rng, int(np.prod(shape[:-1])), 8).reshape(shape)
    else:
        a = rng.normal(0, 1, shape)
    return np.asarray(a).astype(np.dtype(_NP[arg.dtype]))


def _warps(rng, n, size):
    angle, scale = rng.uniform(-3.2, 3.2, n), rng.uniform(0.6, 1.6, n)
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    shift = rng.uniform(-size, size, (2, n))
    return np.stack([cos, -sin, shift[0], sin, cos, shift[1], *rng.uniform(-0.02, 0.02, (2, n))], axis=1)


_NP = {"f32": "float32", "f64": "float64", "i8": "int8", "u8": "uint8", "i32": "int32", "i64": "int64",
       "bool": "bool"}


def build(case: Case, seed: int = 0):
    """The one-op graph of `case` (parameters get fixed random values)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(case.op)
    operands = []
    for i, a in enumerate(case.args):
        if a.param:
            operands.append(b.param(f"p{i}", sample(a, 1, rng)))
        else:
            operands.append(b.input(f"x{i}", TensorType(a.shape, a.dtype)))
    for j, a in enumerate(case.unused):
        b.input(f"u{j}", TensorType(a.shape, a.dtype))
    with b.location(case.op):
        out = b.op(case.op, *operands, **case.attrs)
    outs = list(out) if isinstance(out, tuple) else [out]
    return b.build(outs, [f"y{i}" for i in range(len(outs))])


def feeds(case: Case, batch: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    out = {f"x{i}": sample(a, batch, rng) for i, a in enumerate(case.args) if not a.param}
    out.update({f"u{j}": sample(a, batch, rng) for j, a in enumerate(case.unused)})
    return out


def _unary(op, kind="normal", dtypes=("f32",)):
    return [Case(op, [Arg(("N", 3, 5), dt, kind)], label="" if dt == "f32" else dt) for dt in dtypes]


def _binary(op, kind_a="normal", kind_b="normal", dtypes=("f32",)):
    out = []
    for dt in dtypes:
        sfx = "" if dt == "f32" else f"-{dt}"
        out.append(Case(op, [Arg(("N", 3, 4), dt, kind_a), Arg(("N", 3, 4), dt, kind_b)], label="same" + sfx))
        out.append(Case(op, [Arg(("N", 3, 4), dt, kind_a), Arg((4,), dt, kind_b, param=True)], label="bcast" + sfx))
    return out


INTS = ("i8", "u8", "i32", "i64")
FLOAT_UNARY = {
    "exp": "normal", "log": "positive", "sqrt": "positive", "rsqrt": "positive", "reciprocal": "positive",
    "tanh": "wide", "sigmoid": "wide", "erf": "normal", "softplus": "wide", "floor": "wide", "ceil": "wide",
    "round": "halves", "sin": "wide", "cos": "wide", "log1p": "small", "expm1": "small",
}
NUMERIC_UNARY = {"neg": "wide", "abs": "wide", "sign": "ties", "square": "normal", "relu": "wide"}
NUMERIC_BINARY = {"add": "normal", "sub": "normal", "mul": "normal", "maximum": "ties", "minimum": "ties",
                  "less": "ties", "less_equal": "ties", "greater": "ties", "greater_equal": "ties"}


def _int_kind(kind):
    return "range:-20:20" if kind in ("wide", "normal", "ties") else kind


CASES: list[Case] = []
for _op, _k in FLOAT_UNARY.items():
    CASES += _unary(_op, _k, ("f32", "f64"))
for _op, _k in NUMERIC_UNARY.items():
    CASES += _unary(_op, _k)
    CASES += [Case(_op, [Arg(("N", 3, 5), dt, "range:0:20" if dt == "u8" else _int_kind(_k))], label=dt)
              for dt in INTS]
for _op, _k in NUMERIC_BINARY.items():
    CASES += _binary(_op, _k, _k)
    CASES += _binary(_op, "range:0:30", "range:0:30", INTS)  # u8 sub wraps below zero, as NumPy
CASES += _binary("div", "normal", "positive", ("f32", "f64"))
CASES += _binary("pow", "positive", "normal")
CASES += _binary("equal", "ties", "ties", ("f32", "i32", "bool"))
CASES += _binary("not_equal", "ties", "ties", ("f32", "i64", "bool"))
CASES += _binary("logical_and", "bool", "bool", ("bool",)) + _binary("logical_or", "bool", "bool", ("bool",))
CASES += _unary("logical_not", "bool", ("bool",))
CASES += [
    Case("where", [Arg(("N", 3), "bool", "bool"), Arg(("N", 3)), Arg((3,), param=True)]),
    Case("where", [Arg(("N", 3), "bool", "bool"), Arg(("N", 3), "i64", "ties"), Arg((1,), "i64", "ties", True)],
         label="i64"),
    Case("cast", [Arg(("N", 4), "f32", "wide")], {"dtype": "i32"}, "f32-i32"),
    Case("cast", [Arg(("N", 4), "i32", "ties")], {"dtype": "f32"}, "i32-f32"),
    Case("cast", [Arg(("N", 4), "f32", "ties")], {"dtype": "bool"}, "f32-bool"),
    Case("cast", [Arg(("N", 4), "bool", "bool")], {"dtype": "f64"}, "bool-f64"),
    Case("cast", [Arg(("N", 4), "i64", "range:-300:300")], {"dtype": "u8"}, "i64-u8-wraps"),
]
for _op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"):
    _kind = "near_one" if _op == "reduce_prod" else "normal"
    CASES += [
        Case(_op, [Arg(("N", 3, 5), "f32", _kind)], {"axes": (1,)}, "axis1"),
        Case(_op, [Arg(("N", 3, 5), "f32", _kind)], {"axes": (-1, 1), "keepdims": True}, "keepdims"),
        Case(_op, [Arg(("N", 3, 5), "f32", _kind)], {}, "all"),
        Case(_op, [Arg(("N", 3, 5), "i32", "range:-9:9")], {"axes": (2,)}, "i32"),
        Case(_op, [Arg(("N", 3, 5), "i8", "range:-100:100")], {"axes": (2,)}, "i8"),
        Case(_op, [Arg(("N", 3, 5), "u8", "range:0:250")], {"axes": (1,)}, "u8"),
    ]
for _op in ("argmax", "argmin"):
    CASES += [Case(_op, [Arg(("N", 3, 5), "f32", "ties")], {}, "last"),
              Case(_op, [Arg(("N", 3, 5), "f32", "ties")], {"axis": 1, "keepdims": True}, "axis1"),
              Case(_op, [Arg(("N", 6), "i64", "ties")], {}, "i64")]
CASES += [
    Case("matmul", [Arg(("N", 5)), Arg((5, 7), param=True)], label="2d"),
    Case("matmul", [Arg(("N", 4, 5)), Arg((5, 3), param=True)], label="batched"),
    Case("matmul", [Arg(("N", 5)), Arg((7, 5), param=True)], {"transpose_b": True}, "tb"),
    Case("matmul", [Arg(("N", 5, 4)), Arg(("N", 5, 3))], {"transpose_a": True}, "ta"),
    Case("matmul", [Arg(("N", 2, 3), "i32", "ties"), Arg((3, 4), "i32", "ties", True)], label="i32"),
    Case("matmul", [Arg(("N", 2, 3), "i8", "range:-60:60"), Arg((3, 4), "i8", "range:-60:60", True)], label="i8"),
    Case("transpose", [Arg(("N", 2, 3, 4))], {"perm": (0, 2, 3, 1)}),
    Case("transpose", [Arg(("N", 2, 3), "bool", "bool")], {"perm": (0, 2, 1)}, "bool"),
    Case("reshape", [Arg(("N", 2, 6))], {"shape": ("N", 3, -1)}, "infer"),
    Case("reshape", [Arg(("N", 2, 6), "i64", "ties")], {"shape": ("N", 12)}, "flatten"),
    Case("reshape", [Arg(("N", 2, 0))], {"shape": ("N", 0, 5)}, "empty"),
    Case("reshape", [Arg((2, 6), "f32", param=True)], {"shape": (3, 4)}, "static"),
    Case("broadcast_to", [Arg((3,), param=True)], {"shape": ("N", 2, 3)}, "param", [Arg(("N", 1))]),
    Case("broadcast_to", [Arg(("N", 1, 3))], {"shape": ("N", 4, 3)}, "batched"),
    Case("expand_dims", [Arg(("N", 3))], {"axes": (1,)}),
    Case("expand_dims", [Arg(("N", 3))], {"axes": (-1, 1)}, "two"),
    Case("squeeze", [Arg(("N", 1, 3, 1))], {"axes": (1, -1)}),
    Case("concat", [Arg(("N", 2)), Arg(("N", 3)), Arg(("N", 1))], {"axis": -1}),
    Case("concat", [Arg(("N", 2, 3), "bool", "bool"), Arg(("N", 1, 3), "bool", "bool")], {"axis": 1}, "bool"),
    Case("split", [Arg(("N", 7))], {"axis": 1, "sections": (2, 5)}),
    Case("split", [Arg(("N", 3, 4))], {"axis": 1, "sections": (0, 1, 2)}, "zero"),
    Case("slice", [Arg(("N", 6, 5))], {"axes": (1, 2), "starts": (1, -4), "ends": (5, 100), "steps": (2, 1)}),
    Case("slice", [Arg(("N", 6, 5))], {"axes": (-1,), "starts": (10,), "ends": (20,)}, "empty"),
    Case("slice", [Arg(("N", 6, 5))], {"axes": (), "starts": (), "ends": ()}, "noop"),
    Case("pad", [Arg(("N", 3, 4))], {"pads": (0, 0, 1, 2, 0, 1), "value": 1.5}),
    Case("pad", [Arg(("N", 3), "i32", "ties")], {"pads": (0, 0, 2, 0), "value": -2.7}, "i32"),
    Case("gather", [Arg((10, 4), param=True), Arg(("N", 5), "i32", "index:10")], {}, "embedding"),
    Case("gather", [Arg(("N", 6, 3)), Arg((4,), "i64", "index:6", True)], {"axis": 1}, "axis1"),
    Case("gather", [Arg((7, 4), param=True), Arg(("N",), "u8", "index:7")], {}, "u8"),
    Case("scatter_add", [Arg(("N", 5), "i32", "index:10"), Arg(("N", 5, 4))], {"shape": (10, 4)}, "embedding"),
    Case("scatter_add", [Arg((3,), "i64", "index:7", True), Arg((2, 3, 5))], {"shape": (2, 7, 5), "axis": 1}, "axis1"),
    Case("scatter_add", [Arg(("N", 2), "i64", "index:6"), Arg(("N", 2, 0))], {"shape": (6, 0)}, "empty"),
    Case("one_hot", [Arg(("N", 4), "i32", "range:-2:12")], {"depth": 10}),
    Case("one_hot", [Arg(("N",), "u8", "range:0:255")], {"depth": 300, "dtype": "i64"}, "u8"),
    Case("softmax", [Arg(("N", 5), "f32", "wide")]),
    Case("softmax", [Arg(("N", 3, 4))], {"axis": 1}, "axis1"),
    Case("log_softmax", [Arg(("N", 5), "f32", "wide")]),
    Case("log_softmax", [Arg(("N", 3, 4))], {"axis": 1}, "axis1"),
    Case("conv2d", [Arg(("N", 7, 8, 3)), Arg((3, 3, 3, 4), param=True)], {"strides": (2, 2), "padding": "same"}, "same-s2"),
    Case("conv2d", [Arg(("N", 7, 8, 3)), Arg((2, 3, 3, 4), param=True)], {"padding": "same"}, "same-even"),
    Case("conv2d", [Arg(("N", 9, 8, 2)), Arg((3, 2, 2, 3), param=True)], {"dilations": (2, 1)}, "valid-dil"),
    Case("conv2d", [Arg(("N", 6, 6, 4)), Arg((2, 2, 2, 6), param=True)],
         {"groups": 2, "padding": "same", "strides": (1, 2)}, "groups"),
    Case("conv1d", [Arg(("N", 9, 3)), Arg((3, 3, 5), param=True)], {"padding": "causal", "dilations": 2}, "causal"),
    Case("conv1d", [Arg(("N", 9, 3)), Arg((4, 3, 5), param=True)], {"padding": "same", "strides": 2}, "same"),
    Case("conv1d", [Arg(("N", 9, 4)), Arg((3, 1, 4), param=True)], {"groups": 4}, "depthwise"),
    Case("conv2d_transpose", [Arg(("N", 4, 5, 3)), Arg((3, 3, 4, 3), param=True)], {"strides": (2, 2), "padding": "same"},
         "same-s2"),
    Case("conv2d_transpose", [Arg(("N", 3, 4, 2)), Arg((4, 2, 3, 2), param=True)],
         {"strides": (2, 3), "padding": "same", "output_padding": (1, 2)}, "same-outpad"),
    Case("conv2d_transpose", [Arg(("N", 3, 3, 3)), Arg((2, 3, 4, 3), param=True)], {"strides": (3, 2), "output_padding": (2, 0)},
         "valid-outpad"),
    Case("conv2d_transpose", [Arg(("N", 5, 4, 2)), Arg((3, 2, 3, 2), param=True)], {"dilations": (2, 1)}, "valid-dil"),
    Case("conv2d_input_grad", [Arg(("N", 4, 4, 4)), Arg((3, 3, 3, 4), param=True)],
         {"strides": (2, 2), "padding": "same", "input_shape": ("N", 7, 8, 3)}, "same-s2"),
    Case("conv2d_input_grad", [Arg(("N", 3, 3, 4)), Arg((3, 3, 3, 4), param=True)],
         {"strides": (2, 2), "input_shape": ("N", 8, 8, 3)}, "valid-floor"),
    Case("conv2d_input_grad", [Arg(("N", 5, 5, 6)), Arg((2, 2, 2, 6), param=True)],
         {"groups": 2, "dilations": (2, 2), "input_shape": ("N", 7, 7, 4)}, "groups-dil"),
    Case("conv2d_filter_grad", [Arg(("N", 5, 5, 2), kind="unit"), Arg(("N", 3, 3, 4), kind="unit")],
         {"filter_shape": (3, 3, 2, 4)}, "valid"),
    Case("conv2d_filter_grad", [Arg(("N", 7, 8, 3), kind="unit"), Arg(("N", 4, 4, 4), kind="unit")],
         {"filter_shape": (3, 3, 3, 4), "strides": (2, 2), "padding": "same"}, "same-s2"),
    Case("conv2d_filter_grad", [Arg(("N", 8, 8, 3), kind="unit"), Arg(("N", 3, 3, 4), kind="unit")],
         {"filter_shape": (3, 3, 3, 4), "strides": (2, 2)}, "valid-floor"),
    Case("conv2d_filter_grad", [Arg(("N", 7, 7, 4), kind="unit"), Arg(("N", 5, 5, 6), kind="unit")],
         {"filter_shape": (2, 2, 2, 6), "groups": 2, "dilations": (2, 2)}, "groups-dil"),
    Case("avg_pool2d_grad", [Arg(("N", 4, 4, 3))],
         {"pool_size": (3, 3), "strides": (2, 2), "padding": "same", "input_shape": ("N", 7, 7, 3)}, "same"),
    Case("avg_pool2d_grad", [Arg(("N", 3, 3, 2))],
         {"pool_size": (2, 3), "strides": (2, 2), "input_shape": ("N", 7, 8, 2)}, "valid-floor"),
    Case("max_pool2d_grad", [Arg(("N", 7, 7, 3), "f32", "ties"), Arg(("N", 4, 4, 3))],
         {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}, "same-ties"),
    Case("max_pool2d_grad", [Arg(("N", 7, 8, 2)), Arg(("N", 3, 4, 2))], {"pool_size": (2, 2), "strides": (2, 2)},
         "valid-floor"),
    Case("max_pool2d_grad", [Arg(("N", 5, 5, 2), "f32", "ties"), Arg(("N", 4, 4, 2))],
         {"pool_size": (2, 2), "strides": (1, 1)}, "overlap-ties"),
    Case("max_pool2d", [Arg(("N", 7, 7, 3))], {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}, "same"),
    Case("max_pool2d", [Arg(("N", 7, 8, 3))], {"pool_size": (2, 2), "strides": (2, 2)}, "valid"),
    Case("max_pool2d", [Arg(("N", 7, 7, 3), "i8", "range:-128:128")], {"pool_size": (3, 3), "strides": (2, 2),
                                                                       "padding": "same"}, "i8-same"),
    Case("max_pool2d", [Arg(("N", 6, 8, 16), "u8", "range:0:256")], {"pool_size": (2, 2), "strides": (2, 2)}, "u8"),
    Case("avg_pool2d", [Arg(("N", 7, 7, 3))], {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}, "same"),
    Case("avg_pool2d", [Arg(("N", 6, 8, 3))], {"pool_size": (2, 3), "strides": (1, 2)}, "valid"),
    Case("max_pool1d", [Arg(("N", 9, 3))], {"pool_size": (2,), "strides": (2,), "padding": "same"}, "same"),
    Case("avg_pool1d", [Arg(("N", 9, 3))], {"pool_size": (4,), "strides": (3,), "padding": "same"}, "same"),
    Case("avg_pool1d", [Arg(("N", 9, 3))], {"pool_size": (3,), "strides": (1,)}, "valid"),
]

CASES += [
    Case("random_uniform_like", [Arg(("N", 4, 3)), Arg((), "i64", "range:0:1000", True)], {"seed": 7}),
    Case("random_uniform_like", [Arg(("N", 5), "i32", "ties"), Arg((), "i64", "range:4294967290:4294967300", True)],
         {"seed": 2**31 + 5}, "high-counter"),
    Case("random_uniform_like", [Arg(("N", 2, 2)), Arg((), "i64", "range:-6:-1", True)], {}, "negative-counter"),
]


def _region(name, types, body):
    rb = GraphBuilder(name)
    return rb.build([body(rb, *[rb.input(f"x{i}", TensorType(t)) for i, t in enumerate(types)])], ["y"])


CASES += [  # fused nodes export their region inlined
    Case("fused", [Arg(("N", 3, 5)), Arg((5,), param=True)],
         {"body": _region("loop", [("N", 3, 5), (5,)], lambda b, x, s: b.tanh(b.add(b.mul(x, s), b.constant(1.0))))},
         "loop"),
    Case("fused", [Arg(("N", 3)), Arg((3, 6), param=True), Arg((6,), param=True)],
         {"body": _region("epilogue", [("N", 3), (3, 6), (6,)],
                          lambda b, x, w, c: b.mul(b.relu(b.add(b.matmul(x, w), c)), b.constant(0.5))),
          "kind": "epilogue", "bias": 2, "activation": "relu", "in_kernel": 2}, "epilogue"),
    Case("fused", [Arg(("N", 4, 5))],
         {"body": _region("prologue", [("N", 4, 5)], lambda b, x: b.reduce_sum(b.square(x), axes=(1,))),
          "kind": "prologue"}, "prologue"),
]

# quantization: QDQ nodes and integer ops (tests/onnx/test_onnx_ops.py compares integers exactly)
_S, _ZU, _ZI = Arg((), "f32", "positive", True), Arg((), "u8", "range:100:150", True), Arg((), "i8", "range:-9:9", True)
CASES += [
    Case("quantize", [Arg(("N", 3, 5), "f32", "wide"), Arg((), "f32", "near_one", True), _ZU], label="u8-saturating"),
    Case("quantize", [Arg(("N", 3, 5), "f32", "halves"), Arg((), "f32", "pow2", True), _ZI], label="i8-ties"),
    Case("quantize", [Arg(("N", 3, 5), "f32", "wide"), Arg((5,), "f32", "positive", True),
                      Arg((5,), "i8", "range:-20:20", True)], label="per-axis-last"),
    Case("quantize", [Arg(("N", 4, 3), "f32", "halves"), Arg((4,), "f32", "pow2", True),
                      Arg((4,), "u8", "range:0:256", True)], {"axis": 1}, "per-axis-1"),
    Case("dequantize", [Arg(("N", 3, 5), "u8", "range:0:256"), _S, _ZU], label="u8"),
    Case("dequantize", [Arg(("N", 4, 3), "i8", "range:-128:128"), Arg((4,), "f32", "positive", True),
                        Arg((4,), "i8", "range:-20:20", True)], {"axis": 1}, "i8-per-axis"),
    Case("dequantize", [Arg(("N", 5), "i32", "range:-100000:100000"), _S, Arg((), "i32", "range:-50:50", True)],
         label="i32"),
    Case("dequantize", [Arg(("N", 2, 5), "i32", "range:-100000:100000"), Arg((5,), "f32", "positive", True),
                        Arg((5,), "i32", "range:-50:50", True)], label="i32-per-axis"),
    Case("matmul_integer", [Arg(("N", 13), "u8", "range:0:256"), Arg((13, 7), "i8", "range:-128:128", True), _ZU,
                            Arg((), "i8", "range:-128:128", True)], label="u8"),
    Case("matmul_integer", [Arg(("N", 3, 13), "i8", "range:-128:128"), Arg((13, 7), "i8", "range:-128:128", True),
                            _ZI, Arg((7,), "i8", "range:-20:20", True)], label="i8-per-column"),
    Case("conv2d_integer", [Arg(("N", 7, 8, 3), "u8", "range:0:256"), Arg((3, 3, 3, 4), "i8", "range:-128:128", True),
                            _ZU, Arg((), "i8", "range:-5:5", True)], {"strides": (2, 2), "padding": "same"}, "u8-same"),
    Case("conv2d_integer", [Arg(("N", 6, 6, 4), "i8", "range:-128:128"), Arg((2, 2, 2, 6), "i8", "range:-128:128", True),
                            _ZI, Arg((6,), "i8", "range:-20:20", True)],
         {"groups": 2, "padding": "same", "dilations": (2, 1)}, "i8-per-channel-groups"),
    Case("requantize", [Arg(("N", 3, 5), "i32", "range:-3000:3000"), Arg((), "f32", "small", True), _ZU], label="u8"),
    Case("requantize", [Arg(("N", 5), "i32", "range:-3000:3000"), Arg((5,), "f32", "small", True), _ZI],
         {"relu": True}, "i8-per-axis-relu"),
]

CASES += [  # fake_quantize exports as Min/Max + QuantizeLinear + DequantizeLinear (uint8)
    Case("fake_quantize", [Arg(("N", 6), kind="wide"), Arg((), param=True), Arg((), kind="positive", param=True)]),
    Case("fake_quantize", [Arg(("N", 3, 5)), Arg((5,), param=True), Arg((5,), kind="positive", param=True)],
         {"narrow": True}, "per-channel-narrow"),
]

_CELL = """graph @cell(%h: f32[N,4], %x: f32[N,2], %w: f32[2,4], %u: f32[4,4]) -> (h: f32[N,4], y: f32[N,4]) {
  %0 = matmul(%x, %w) : f32[N,4]
  %1 = matmul(%h, %u) : f32[N,4]
  %2 = add(%0, %1) : f32[N,4]
  %3 = tanh(%2) : f32[N,4]
  %4 = constant() {value=array(f32[], [0.5])} : f32[]
  %5 = mul(%3, %4) : f32[N,4]
  return %3, %5
}
"""


def _scan_cases():
    from kcompile.ir import parse_graph
    args = [Arg(("N", 4)), Arg(("N", 5, 2)), Arg((2, 4), param=True), Arg((4, 4), "f32", "small", True)]
    for reverse in (False, True):
        yield Case("scan", args, {"body": parse_graph(_CELL), "num_carries": 1, "axis": 1, "reverse": reverse},
                   "rnn-reverse" if reverse else "rnn")


CASES += list(_scan_cases())
CASES += [  # index structures drawn at random: repeated blocks, empty block columns
    Case("sparse_matmul", [Arg(("N", 7)), Arg((9,), param=True), Arg((9,), "i32", "range:0:7", True),
                           Arg((6,), "i32", "offsets:9", True)], {"block": (1, 1)}, "csc"),
    Case("sparse_matmul", [Arg(("N", 2, 8)), Arg((24,), param=True), Arg((4,), "i32", "range:0:4", True),
                           Arg((4,), "i32", "offsets:4", True)], {"block": (2, 3), "weight": "d/kernel"}, "block"),
    # int8 windows (128, 16, 4): two panels, 5 steps; indices past K are empty slots
    Case("sparse_qmatmul", [Arg(("N", 13), "u8", "range:0:256"), Arg((320,), "i8", "range:-128:128", True),
                            Arg((320,), "u8", "range:0:128", True),
                            Arg((2 + 1 + 13 + 20,), "i32", "windows:13:20:2:5", True),
                            _ZU], {"block": (128, 16, 4), "layout": "windows", "n": 20, "weight": "d/kernel_int8"}),
    Case("patches", [Arg(("N", 7, 6, 3))], {"kernel": (3, 2), "strides": (2, 1), "dilations": (1, 2),
                                              "padding": "same"}, "2d-same"),
    Case("patches", [Arg(("N", 9, 4))], {"kernel": (3,), "strides": (1,), "dilations": (1,), "padding": "valid"},
         "1d-valid"),
    Case("patches", [Arg(("N", 5, 6, 2), "u8", "range:0:256")], {"kernel": (3, 3), "strides": (1, 2),
                                                                "dilations": (1, 1), "padding": "same",
                                                                "pad_value": 140}, "u8-zero-point"),
]
CASES += [
    Case("stop_gradient", [Arg(("N", 3, 4))]),
    Case("cumsum", [Arg(("N", 5))], {"axis": 1}),
    Case("cumsum", [Arg(("N", 4, 3))], {"axis": 1, "reverse": True}, "reverse"),
    Case("cumsum", [Arg(("N", 6), "i32", "range:-9:9")], {"axis": -1}, "i32"),
    Case("top_k", [Arg(("N", 9))], {"k": 3}),
    Case("top_k", [Arg(("N", 2, 8), "f32", "ties")], {"k": 8}, "ties"),
]
CASES += [  # image ops: Resize on H and W; affine_transform as GridSample (wrap has no ONNX form)
    Case("resize", [Arg(("N", 5, 7, 3))], {"size": (11, 4)}, "bilinear"),
    Case("resize", [Arg(("N", 5, 7, 3))], {"size": (3, 13), "interpolation": "nearest"}, "nearest"),
    *[Case("affine_transform", [Arg(("N", 6, 7, 2)), Arg(("N", 8), kind="warp")],
           {"fill_mode": mode, "fill_value": 0.5, "interpolation": interp}, f"{interp}-{mode}")
      for mode in ("constant", "nearest", "mirror", "reflect") for interp in ("bilinear", "nearest")],
    Case("affine_transform", [Arg(("N", 6, 7, 2)), Arg((8,), kind="warp", param=True)], {}, "one-transform"),
]
