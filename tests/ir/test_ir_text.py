"""The textual IR: exact round trips of every attribute kind, naming rules, and parse errors."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, ParseError, TensorType, parse_graph, print_graph, verify
from kcompile.runtime.reference import run

from ir_util import assert_same_graph, roundtrip

MLP_TEXT = """\
graph @mlp(%x: f32[N,6]) -> (logits: f32[N,2], "aux/out": f32[N,4]) {
  %dense_kernel = param "dense/kernel" : f32[6,4]
  %dense_bias = param "dense/bias" : f32[4]
  %0 = matmul(%x, %dense_kernel) : f32[N,4] loc("dense")
  %1 = add(%0, %dense_bias) : f32[N,4] loc("dense")
  %2 = relu(%1) : f32[N,4] loc("dense")
  %3, %4 = split(%2) {sections=[2, 2]} : f32[N,2], f32[N,2]
  %5 = reshape(%4) {shape=[N, 2, 1]} : f32[N,2,1]
  %6 = reduce_sum(%5) {axes=[-1]} : f32[N,2]
  %7 = constant() {value=array(f32[2], [0.5, -1.25])} : f32[2]
  %8 = mul(%6, %7) : f32[N,2]
  return %8, %2
}
"""


def build_mlp():
    b = GraphBuilder("mlp")
    x = b.input("x", TensorType(["N", 6]))
    w = b.param("dense/kernel", np.arange(24, dtype=np.float32).reshape(6, 4) / 10)
    bias = b.param("dense/bias", np.array([0.1, -0.2, 0.3, -0.4], np.float32))
    with b.location("dense"):
        h = b.relu(b.add(b.matmul(x, w), bias))
    _, right = b.split(h, sections=[2, 2])
    s = b.reduce_sum(b.reshape(right, shape=["N", 2, 1]), axes=[-1])
    y = b.mul(s, b.constant(np.array([0.5, -1.25], np.float32)))
    return b.build([y, h], ["logits", "aux/out"])


def test_golden_text():
    assert print_graph(build_mlp()) == MLP_TEXT


def test_parse_print_identity_and_graph_equality():
    g = build_mlp()
    parsed = parse_graph(MLP_TEXT)
    assert print_graph(parsed) == MLP_TEXT
    assert_same_graph(g, parsed)
    assert parsed.param_values == {} and parsed.param_names == ["dense/kernel", "dense/bias"]


def test_parsed_graph_runs_with_values_given_beside_it():
    g = build_mlp()
    x = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    parsed = parse_graph(print_graph(g)).with_param_values(g.param_values)
    for a, b in zip(run(g, [x]), run(parsed, [x])):
        np.testing.assert_array_equal(a, b)


def test_str_of_graph_is_its_text():
    assert str(build_mlp()) == MLP_TEXT


SPECIAL_F32 = [0.0, -0.0, 0.1, 1 / 3, np.inf, -np.inf, np.nan, 1e-45, 1.17549435e-38, 3.4028235e38, -2.5e-7, 16777217.0]
SPECIAL_F64 = [0.1, 1 / 3, -0.0, np.inf, np.nan, 5e-324, 1.7976931348623157e308, 2.0 ** 60 + 1, np.pi]


@pytest.mark.parametrize("value", [
    np.array(SPECIAL_F32, np.float32),
    np.array(SPECIAL_F64, np.float64).reshape(3, 3),
    np.array([[-128, 127, 0]], np.int8),
    np.array([0, 255, 7], np.uint8),
    np.array([-2**31, 2**31 - 1], np.int32),
    np.array([-2**63, 2**63 - 1, 0], np.int64),
    np.array([[True, False], [False, True]]),
    np.array(2.5, np.float32),
    np.zeros((0, 3), np.float32),
    np.float32(np.random.default_rng(3).normal(size=(4, 5))),
], ids=lambda a: f"{a.dtype}{list(a.shape)}")
def test_array_attributes_round_trip_bit_exactly(value):
    b = GraphBuilder("consts")
    c = b.op("constant", value=value)
    parsed = roundtrip(b.build([c]))
    got = parsed.nodes[0].attrs["value"]
    assert got.dtype == value.dtype and got.shape == value.shape
    if value.dtype.kind == "f":  # NaN has no exact bits to keep; everything else does (signed zeros too)
        assert np.array_equal(np.isnan(got), np.isnan(value))
        got, value = got[~np.isnan(got)], value[~np.isnan(value)]
    assert got.tobytes() == value.tobytes()


@pytest.mark.parametrize("pad_value", [0.0, -0.0, 1 / 3, 1e-310, -1e300, float("inf"), float("-inf"), float("nan"), 7.0])
def test_float_attributes_round_trip_with_full_precision(pad_value):
    b = GraphBuilder("pad")
    y = b.pad(b.input("x", TensorType(["N", 3])), pads=[0, 0, 1, 1], value=pad_value)
    got = roundtrip(b.build([y])).nodes[0].attrs["value"]
    assert repr(got) == repr(pad_value)


def test_scalar_kinds_round_trip():
    b = GraphBuilder("kinds")
    x = b.input("x", TensorType(["N", 4, 6], "f32"))
    y = b.cast(x, dtype="f64")                                         # dtype
    y = b.transpose(y, perm=[0, 2, 1])                                 # ints
    y = b.reduce_max(y, axes=[-1], keepdims=True)                      # ints, bool
    y = b.broadcast_to(y, shape=["N", 6, 3])                           # shape with N
    y = b.conv1d(y, b.param("k", np.ones((2, 3, 5))), padding="causal", dilations=2)  # str choice
    z = b.one_hot(b.argmax(y, axis=-2), depth=3, dtype="i8")           # int, dtype
    text = print_graph(roundtrip(b.build([y, z])))
    assert 'padding="causal"' in text and "dtype=i8" in text and "shape=[N, 6, 3]" in text


@pytest.mark.parametrize("name", ['plain', 'inf', 'true', 'with space', 'quote"and\\backslash', 'new\nline\ttab', 'dénse/ü 1', '', '%@{}'])
def test_names_with_any_characters_survive(name):
    b = GraphBuilder(name or "g")
    x = b.input("in " + name, TensorType([2]))
    p = b.param(name, np.ones(2, np.float32))
    with b.location(name):
        y = b.add(x, p)
    g = b.build([y], [name or "out"])
    parsed = roundtrip(g)
    assert parsed.nodes[0].name == name and parsed.param_names == [name]
    assert parsed.output_names == (name or "out",) and parsed.inputs[0].name == "in " + name


def test_value_names_unique_kept_duplicates_and_numbers_get_counters():
    b = GraphBuilder("names")
    x = b.input("x", TensorType([3]))
    a, c, d, e = (b.neg(x) for _ in range(4))
    outs = [b.add(v, x) for v in (a, c, d, e)]
    a.name, c.name, d.name, e.name = "h", "h", "12", "x"
    text = print_graph(verify(b.build(outs, verify=False)))  # (names are lost, so no round-trip check)
    assert "%h = neg(%x)" in text and "%0 = neg(%x)" in text and "%1 = neg(%x)" in text
    assert "%2 = neg(%x)" in text  # "x" is taken by the input
    parsed = parse_graph(text)
    assert [n.outputs[0].name for n in parsed.nodes[:4]] == ["h", None, None, None]
    assert print_graph(parsed) == text


def test_every_value_gets_a_distinct_printed_name():
    b = GraphBuilder("many")
    x = b.input("x", TensorType([2, 3]))
    parts = b.split(x, axis=1, sections=[1, 1, 1])
    y = b.concat(*parts, axis=1)
    text = print_graph(roundtrip(b.build([y, parts[2]])))
    assert "%0, %1, %2 = split(%x) {axis=1, sections=[1, 1, 1]} : f32[2,1], f32[2,1], f32[2,1]" in text


def test_comments_and_whitespace_are_ignored():
    text = MLP_TEXT.replace("  %0 =", "  // a comment\n     %0   =").replace(", ", " ,\n ")
    assert print_graph(parse_graph(text)) == MLP_TEXT


GOOD = "graph @g(%x: f32[N,4]) -> (y: f32[N,4]) {\n  %0 = relu(%x) : f32[N,4]\n  return %0\n}\n"

PARSE_ERRORS = [  # (text, line, column, message fragment)
    (GOOD.replace("relu(%x)", "relu(%y)"), 2, 13, "use of undefined value %y"),
    (GOOD.replace("%0 = relu(%x) : f32[N,4]", "%0 = relu(%0) : f32[N,4]"), 2, 13, "undefined value %0"),
    (GOOD.replace("return %0", "%0 = relu(%x) : f32[N,4]\n  return %0"), 3, 3, "value %0 is defined twice"),
    (GOOD.replace("(%x: f32", "(%x: f32[N,4], %x: f32"), 1, 24, "value %x is defined twice"),
    (GOOD.replace("relu(%x) : f32[N,4]", "relu(%x) : f32[N,5]"), 2, 8,
     "node #0 (relu): printed types f32[N,5] but inference gives f32[N,4]"),
    (GOOD.replace("relu(%x)", "relu(%x) {alpha=0.1}"), 2, 8, "has no attribute(s) ['alpha']"),
    (GOOD.replace("relu(%x)", "softmax(%x) {axis=1.5}"), 2, 8, "attribute 'axis' expects int"),
    (GOOD.replace("relu(%x)", "frob(%x)"), 2, 8, "unknown op 'frob'"),
    (GOOD.replace("relu(%x)", "add(%x)"), 2, 8, "takes 2 input(s)"),
    (GOOD.replace("relu(%x)", "exp(%x, %x)"), 2, 8, "takes 1 input(s)"),
    (GOOD.replace("f32[N,4]) -> (", "q16[N,4]) -> ("), 1, 14, "unsupported dtype 'q16'"),
    (GOOD.replace("%x: f32[N,4]", "%x: f32[4,N]"), 1, 14, "the batch symbol N may only be the leading dimension"),
    (GOOD.replace("%x: f32[N,4]", "%x: f32[N,-4]"), 1, 20, "expected a dimension"),
    (GOOD.replace("(y: f32[N,4])", "(y: f32[N,3])"), 3, 3, "declared f32[N,3] but returns f32[N,4]"),
    (GOOD.replace("(y: f32[N,4])", "(y: f32[N,4], z: f32[N,4])"), 3, 3, "declares 2 output(s), return gives 1"),
    (GOOD.replace("(y: f32[N,4])", "(y: f32[N,4], y: f32[N,4])").replace("return %0", "return %0, %0"), 3, 3,
     "output names ['y', 'y'] must be unique"),
    (GOOD.replace("  %0 = relu(%x) : f32[N,4]\n", "  %0 = relu(%x) : f32[N,4] ?\n"), 2, 28, "unexpected character '?'"),
    (GOOD[:-2], 4, 1, "expected '}', got end of input"),
    (GOOD + "extra", 5, 1, "expected end of input after '}'"),
    (GOOD.replace("graph @g", "grph @g"), 1, 1, "expected 'graph'"),
    (GOOD.replace("@g", "g"), 1, 7, "expected a graph name like @main"),
    (GOOD.replace("%0 = relu", "0 = relu"), 2, 3, "expected a statement like '%0 = op(...)' or 'return'"),
    (GOOD.replace("relu(%x) :", "relu(%x)"), 2, 17, "expected ':'"),
    (GOOD.replace("relu(%x)", "relu(%x"), 2, 16, "expected ',' or ')'"),
    (GOOD.replace("relu(%x) : f32[N,4]", "split(%x) {sections=[1, 3]} : f32[N,1]"), 2, 8,
     "printed types f32[N,1] but inference gives f32[N,1], f32[N,3]"),
    (GOOD.replace("%0 = relu(%x) : f32[N,4]", "%0, %1 = relu(%x) : f32[N,4]"), 2, 12, "2 result(s) but 1 type(s)"),
    (GOOD.replace("relu(%x)", "relu(%x) {value=}"), 2, 24, "expected an attribute value"),
    (GOOD.replace('%0 = relu(%x) : f32[N,4]', '%c = constant() {value=array(u8[2], [1, 300])} : u8[2]\n'
                  '  %0 = relu(%x) : f32[N,4]'), 2, 43, "300 is out of range for u8"),
    (GOOD.replace('%0 = relu(%x) : f32[N,4]', '%c = constant() {value=array(f32[3], [1.0, 2.0])} : f32[3]\n'
                  '  %0 = relu(%x) : f32[N,4]'), 2, 26, "array f32[3] needs 3 elements, got 2"),
    (GOOD.replace('%0 = relu(%x) : f32[N,4]', '%c = constant() {value=array(i32[1], [1.5])} : i32[1]\n'
                  '  %0 = relu(%x) : f32[N,4]'), 2, 41, "expected a i32 array element, got '1.5'"),
    (GOOD.replace('%0 = relu(%x) : f32[N,4]', '%c = constant() {value=array(f32[N], [1.5])} : f32[1]\n'
                  '  %0 = relu(%x) : f32[N,4]'), 2, 26, "must have a static shape"),
    (GOOD.replace('%0 = relu(%x) : f32[N,4]', '%w = param "w" : f32[N,4]\n  %0 = relu(%x) : f32[N,4]'), 4, 3,
     "parameter 'w' must have a static shape"),
    (GOOD.replace('%0 = relu(%x) : f32[N,4]', '%w = param "w" : f32[4]\n  %v = param "w" : f32[4]\n'
                  '  %0 = relu(%x) : f32[N,4]'), 5, 3, "parameter names must be unique"),
    (GOOD.replace("relu(%x) : f32[N,4]", 'relu(%x) : f32[N,4] loc(dense)'), 2, 32,
     "expected a location string"),
    (GOOD.replace("-> (y", '-> ("bad\\q"'), 1, 28, "bad string escape"),
]


@pytest.mark.parametrize("text,line,column,fragment", PARSE_ERRORS, ids=[e[3][:40] for e in PARSE_ERRORS])
def test_parse_errors_give_line_column_and_expectation(text, line, column, fragment):
    with pytest.raises(ParseError) as info:
        parse_graph(text)
    assert fragment in str(info.value)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert str(info.value).startswith(f"line {line}, column {column}: ")


def test_good_text_parses():
    assert print_graph(parse_graph(GOOD)) == GOOD


def _region():
    b = GraphBuilder("double")
    x = b.input("x", TensorType(["N", 2]))
    return b.build([b.add(x, x)])


ALL_KINDS = {"i": ("int", -7), "f": ("float", 1 / 3), "b": ("bool", True), "s": ("str", 'say "hi"\\\n\t\u00e9\x00'),
             "ii": ("ints", (3, -1)), "ff": ("floats", (0.1, float("-inf"), -0.0, 5e-324)), "sh": ("shape", ("N", 2)),
             "dt": ("dtype", "u8"), "arr": ("array", np.array([[1, -2]], np.int32)),
             "g": ("graph", _region())}


@pytest.fixture
def every_kind_op():
    """A throwaway op whose attributes cover every kind the registry knows (no real op has 'floats')."""
    from kcompile.ir import OPS, Attr, defop
    attrs = {key: Attr(kind) for key, (kind, _) in ALL_KINDS.items()}
    defop("_every_kind", ("x",), lambda ts, a: [ts[0]], lambda xs, a, batch: [xs[0]], attrs=attrs)
    yield "_every_kind"
    del OPS["_every_kind"]


def test_every_attribute_kind_round_trips(every_kind_op):
    from kcompile.ir.registry import _COERCE
    assert {kind for kind, _ in ALL_KINDS.values()} == set(_COERCE)  # a new attribute kind needs a row above
    b = GraphBuilder("kinds")
    y = b.op(every_kind_op, b.input("x", TensorType(["N"])), **{k: v for k, (_, v) in ALL_KINDS.items()})
    text = print_graph(b.build([y]))
    attrs = parse_graph(text).nodes[0].attrs
    assert attrs["s"] == ALL_KINDS["s"][1] and repr(attrs["f"]) == repr(1 / 3) and attrs["sh"] == ("N", 2)
    assert [repr(v) for v in attrs["ff"]] == ["0.1", "-inf", "-0.0", "5e-324"]
    assert 's="say \\"hi\\"\\\\\\n\\t\u00e9\\u0000"' in text and "dt=u8" in text and "sh=[N, 2]" in text
