"""Property test: random valid graphs print, parse, re-verify and re-print identically, and run the same."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kcompile.ir import GraphBuilder, TensorType, parse_graph, print_graph, verify
from kcompile.runtime.reference import run

from ir_util import assert_same_graph

UNARY = ["neg", "abs", "exp", "tanh", "sigmoid", "relu", "square", "floor", "sin", "softplus"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]
REDUCE = ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"]
NAME = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
FLOATS = st.one_of(st.floats(width=32), st.sampled_from([0.0, -0.0, 0.1, 1e-45, float("inf"), float("nan")]))


def _static_dims(t: TensorType):
    return [i for i, d in enumerate(t.shape) if not isinstance(d, str)]


class RandomGraph:
    """Grows a graph one random op at a time from a pool of f32 values."""

    def __init__(self, data):
        self.data, self.b, self.pool, self.count = data, GraphBuilder(data.draw(NAME) or "g"), [], 0

    def draw(self, strategy):
        return self.data.draw(strategy)

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}{self.draw(NAME)}"  # unique, with odd characters now and then

    def add_input(self):
        rank = self.draw(st.integers(1, 3))
        shape = [self.draw(st.integers(1, 4)) for _ in range(rank)]
        if self.draw(st.booleans()):
            shape[0] = "N"
        self.pool.append(self.b.input(self.fresh("in"), TensorType(shape)))

    def constant_like(self, dims):
        values = self.draw(st.lists(FLOATS, min_size=int(np.prod(dims)), max_size=int(np.prod(dims))))
        return self.b.constant(np.array(values, np.float32).reshape(dims))

    def step(self):
        x = self.draw(st.sampled_from(self.pool))
        kind = self.draw(st.sampled_from(["unary", "binary", "reduce", "matmul", "reshape", "transpose",
                                          "concat", "split", "select", "cast"]))
        with self.b.location(self.fresh("loc") if self.draw(st.booleans()) else None):
            out = getattr(self, kind)(x, x.type)
        for v in out if isinstance(out, tuple) else (out,):
            if self.draw(st.booleans()):
                v.name = self.fresh("v")
            self.pool.append(v)

    def unary(self, x, t):
        return self.b.op(self.draw(st.sampled_from(UNARY)), x)

    def binary(self, x, t):
        same = [v for v in self.pool if v.type == t]
        keep = self.draw(st.integers(0, t.rank))  # broadcast against a constant of a suffix shape
        other = self.draw(st.sampled_from(same)) if self.draw(st.booleans()) else \
            self.constant_like([1 if self.draw(st.booleans()) else d for d in t.shape[t.rank - keep:]]
                               if "N" not in t.shape[t.rank - keep:] else [1] * keep)
        return self.b.op(self.draw(st.sampled_from(BINARY)), x, other)

    def reduce(self, x, t):
        axes = self.draw(st.lists(st.sampled_from(_static_dims(t)), unique=True)) if _static_dims(t) else []
        return self.b.op(self.draw(st.sampled_from(REDUCE)), x, axes=axes, keepdims=self.draw(st.booleans()))

    def matmul(self, x, t):
        if t.rank < 2:
            return self.b.relu(x)
        w = self.b.param(self.fresh("w/"), np.ones((t.shape[-1], self.draw(st.integers(1, 3))), np.float32))
        return self.b.matmul(x, w)

    def reshape(self, x, t):
        return self.b.reshape(x, shape=["N", -1] if t.has_batch else [-1])

    def transpose(self, x, t):
        fixed = 1 if t.has_batch else 0
        rest = self.draw(st.permutations(range(fixed, t.rank)))
        return self.b.transpose(x, perm=list(range(fixed)) + list(rest))

    def concat(self, x, t):
        axis = self.draw(st.sampled_from(_static_dims(t) or [None]))
        return self.b.relu(x) if axis is None else self.b.concat(x, x, axis=axis)

    def split(self, x, t):
        axis = self.draw(st.sampled_from(_static_dims(t) or [None]))
        if axis is None or t.shape[axis] < 2:
            return self.b.neg(x)
        first = self.draw(st.integers(1, t.shape[axis] - 1))
        return self.b.split(x, axis=axis, sections=[first, t.shape[axis] - first])

    def select(self, x, t):
        cond = self.b.less(x, self.constant_like([]))
        return self.b.where(cond, x, self.b.neg(x))

    def cast(self, x, t):
        to = self.draw(st.sampled_from(["i32", "i8", "f64", "bool", "u8"]))
        return self.b.cast(self.b.cast(x, dtype=to), dtype="f32")

    def build(self):
        outs = self.draw(st.lists(st.sampled_from(self.pool[1:] or self.pool), min_size=1, max_size=3))
        names = [self.fresh("out") for _ in outs]
        return self.b.build(outs, names)


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_graphs_round_trip_through_text(data):
    rg = RandomGraph(data)
    for _ in range(data.draw(st.integers(1, 2))):
        rg.add_input()
    for _ in range(data.draw(st.integers(1, 8))):
        rg.step()
    g = rg.build()
    text = print_graph(g)
    parsed = verify(parse_graph(text))
    assert print_graph(parsed) == text
    assert_same_graph(g, parsed)
    _same_results(g, parsed.with_param_values(g.param_values))


def _same_results(g, parsed):
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=v.type.concrete_shape(2)).astype(np.float32) for v in g.inputs]
    with np.errstate(all="ignore"):
        for a, b in zip(run(g, inputs), run(parsed, inputs)):
            np.testing.assert_array_equal(a, b)
