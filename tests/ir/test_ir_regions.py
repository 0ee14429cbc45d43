"""Regions (graph-valued attributes): nested text round trip, verifier recursion, interpreter runs."""
import numpy as np
import pytest

from kcompile.ir import (OPS, Attr, GraphBuilder, ParseError, TensorType, VerificationError, attrs_equal, defop,
                         parse_graph, print_graph, verify)
from kcompile.ir.errors import ShapeError
from kcompile.ir.graph import Graph, Node
from kcompile.ir.interpreter import run


def _call_infer(types, attrs):
    body = attrs["body"]
    if len(types) != len(body.inputs):
        raise ShapeError(f"body @{body.name} takes {len(body.inputs)} input(s), got {len(types)}")
    for i, (t, v) in enumerate(zip(types, body.inputs)):
        if t != v.type:
            raise ShapeError(f"input {i} is {t} but body @{body.name} expects {v.type}")
    return [v.type for v in body.outputs]


@pytest.fixture(autouse=True)
def call_op():
    """A throwaway op that applies its region to its inputs (the smallest op with a region)."""
    defop("_call", ("*args",), _call_infer, lambda xs, a, batch: run(a["body"], xs, batch=batch),
          attrs={"body": Attr("graph")})
    yield "_call"
    del OPS["_call"]


def double_region(name="double", shape=("N", 3)):
    b = GraphBuilder(name)
    x = b.input("x", TensorType(shape))
    return b.build([b.add(x, x)], ["y"])


def caller(region: Graph, nested=False) -> Graph:
    b = GraphBuilder("main")
    x = b.input("x", TensorType(["N", 3]))
    if nested:  # a region whose own node holds a region
        ib = GraphBuilder("outer_body")
        ix = ib.input("x", TensorType(["N", 3]))
        region = ib.build([ib.relu(ib.op("_call", ix, body=region))], ["r"])
    y = b.op("_call", x, body=region, name="call")
    return b.build([b.mul(y, x)], ["out"])


NESTED_TEXT = """\
graph @main(%x: f32[N,3]) -> (out: f32[N,3]) {
  %0 = _call(%x) {body=graph @outer_body(%x: f32[N,3]) -> (r: f32[N,3]) {
    %0 = _call(%x) {body=graph @double(%x: f32[N,3]) -> (y: f32[N,3]) {
      %0 = add(%x, %x) : f32[N,3]
      return %0
    }} : f32[N,3]
    %1 = relu(%0) : f32[N,3]
    return %1
  }} : f32[N,3] loc("call")
  %1 = mul(%0, %x) : f32[N,3]
  return %1
}
"""


def test_nested_regions_print_indented_and_parse_back():
    g = caller(double_region(), nested=True)
    assert print_graph(g) == NESTED_TEXT
    parsed = parse_graph(NESTED_TEXT)
    assert print_graph(parsed) == NESTED_TEXT
    inner = parsed.nodes[0].attrs["body"].nodes[0].attrs["body"]
    assert isinstance(inner, Graph) and inner.name == "double" and not inner.params


def test_regions_compare_structurally():
    a, b = double_region(), double_region()
    assert a is not b and attrs_equal({"body": a}, {"body": b})
    assert not attrs_equal({"body": a}, {"body": double_region("other")})
    assert not attrs_equal({"body": a}, {"body": 3})


def test_interpreter_runs_regions_nested():
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    (out,) = run(parse_graph(NESTED_TEXT), [x])
    np.testing.assert_allclose(out, np.maximum(2 * x, 0) * x, rtol=1e-6)


def test_region_attribute_must_be_a_graph():
    b = GraphBuilder("main")
    x = b.input("x", TensorType(["N", 3]))
    with pytest.raises(Exception, match="attribute 'body' expects graph"):
        b.op("_call", x, body="not a graph")


# -- verifier: malformed regions, with the node and region named ----------------------------------
def _node(op, ins, attrs, outs):
    return Node(op, ins, attrs, outs, "call")


def test_verifier_reports_free_values_from_outside_the_region():
    x = GraphBuilder("main").input("x", TensorType(["N", 3]))
    rb = GraphBuilder("leaky")
    r = rb.input("r", TensorType(["N", 3]))
    leaky = Graph("leaky", [r], [], [Node("add", [r, x], {}, [r.type])], [])
    leaky = Graph("leaky", [r], [], leaky.nodes, [leaky.nodes[0].outputs[0]])
    node = _node("_call", [x], {"body": leaky}, [x.type])
    with pytest.raises(VerificationError) as info:
        verify(Graph("main", [x], [], [node], node.outputs))
    msg = str(info.value)
    assert "node 'call' (_call), attribute 'body': region @leaky, node #0 node add" in msg
    assert "input 1 (%x: f32[N,3]) is a free value from outside the region" in msg


def test_verifier_reports_a_region_returning_an_outer_value():
    x = GraphBuilder("main").input("x", TensorType(["N", 3]))
    r = GraphBuilder("r").input("r", TensorType(["N", 3]))
    node = _node("_call", [x], {"body": Graph("passthrough", [r], [], [], [x])}, [x.type])
    with pytest.raises(VerificationError, match=r"region @passthrough: output 0 \(%x: f32\[N,3\]\) is a free value"):
        verify(Graph("main", [x], [], [node], node.outputs))


def test_verifier_rejects_regions_with_params():
    rb = GraphBuilder("weighted")
    r = rb.input("r", TensorType(["N", 3]))
    w = rb.param("w", np.ones(3, np.float32))
    region = rb.build([rb.mul(r, w)])
    b = GraphBuilder("main")
    x = b.input("x", TensorType(["N", 3]))
    b.op("_call", x, body=region, name="call")
    with pytest.raises(VerificationError, match=r"node 'call' \(_call\), attribute 'body': region @weighted has "
                                                r"parameters \['w'\]; regions are closed"):
        b.build([b.nodes[-1].outputs[0]])


def test_verifier_recurses_into_a_broken_region():
    x = GraphBuilder("main").input("x", TensorType(["N", 3]))
    r = GraphBuilder("r").input("r", TensorType(["N", 3]))
    bad = Node("add", [r, r], {}, [TensorType(["N", 4])])  # a wrong output type inside the region
    node = _node("_call", [x], {"body": Graph("broken", [r], [], [bad], bad.outputs)}, [TensorType(["N", 4])])
    with pytest.raises(VerificationError, match=r"region @broken, node #0 node add: output 0 has type f32\[N,4\], "
                                                r"inference gives f32\[N,3\]"):
        verify(Graph("main", [x], [], [node], node.outputs))


def test_verifier_reports_region_arity_mismatch_by_node_name():
    x = GraphBuilder("main").input("x", TensorType(["N", 3]))
    node = _node("_call", [x, x], {"body": double_region()}, [x.type])
    with pytest.raises(VerificationError, match=r"node 'call'.*body @double takes 1 input\(s\), got 2"):
        verify(Graph("main", [x], [], [node], node.outputs))


# -- parse errors inside regions keep their line and column ---------------------------------------
@pytest.mark.parametrize("old,new,line,column,fragment", [
    ("%0 = add(%x, %x) : f32[N,3]\n      return", "%0 = add(%x, %q) : f32[N,3]\n      return", 4, 20,
     "use of undefined value %q"),
    ("%0 = add(%x, %x) : f32[N,3]\n      return", "%0 = add(%x, %x) : f32[N,4]\n      return", 4, 12,
     "inference gives f32[N,3]"),
    ("return %0\n    }}", "return %0, %0\n    }}", 5, 7, "declares 1 output(s), return gives 2"),
    ("_call(%x) {body=graph @double(%x: f32[N,3])", "_call(%x) {body=graph @double(%x: f32[N,3], %z: f32[N,3])",
     3, 10, "body @double takes 2 input(s), got 1"),
    ("@double(%x: f32[N,3]) -> (y", "@double(%x: f32[N,3]) (y", 3, 54, "expected '->'"),
])
def test_parse_errors_inside_regions_give_line_and_column(old, new, line, column, fragment):
    assert old in NESTED_TEXT
    with pytest.raises(ParseError) as info:
        parse_graph(NESTED_TEXT.replace(old, new, 1))
    assert fragment in str(info.value)
    assert (info.value.line, info.value.column) == (line, column), str(info.value)


def test_parsed_region_cannot_use_outer_values():
    text = NESTED_TEXT.replace("%1 = relu(%0)", "%1 = relu(%zz)")
    with pytest.raises(ParseError, match="use of undefined value %zz"):
        parse_graph(text)
    # the outer graph's %x is not visible inside a region that names its own input differently
    text = NESTED_TEXT.replace("@outer_body(%x: f32[N,3])", "@outer_body(%xin: f32[N,3])")
    with pytest.raises(ParseError, match=r"line 3, column 16: use of undefined value %x"):
        parse_graph(text)


# -- scan: the body's signature against the carries, scanned inputs and constants -----------------
def _cell(h_type="f32[N,4]", x_type="f32[N,2]", out_type=None, extra=""):
    out_type = out_type or h_type
    return f"""graph @cell(%h: {h_type}, %x: {x_type}, %w: f32[2,4]) -> (h: {out_type}, y: f32[N,4]) {{
  %0 = matmul(%x, %w) : f32[N,4]
  {extra}%1 = tanh(%0) : f32[N,4]
  return %1, %1
}}
"""


def _scan_node(body_text, xs="f32[N,5,2]", carry="f32[N,4]"):
    b = GraphBuilder("main")
    h0, xs_v = b.input("h0", _ty(carry)), b.input("xs", _ty(xs))
    w = b.input("w", TensorType([2, 4]))
    return b, (h0, xs_v, w), parse_graph(body_text)


def _ty(text):
    dt, dims = text.split("[")
    return TensorType([d if d.isidentifier() else int(d) for d in dims.rstrip("]").split(",") if d], dt)


@pytest.mark.parametrize("body,xs,carry,fragment", [
    (_cell(), "f32[N,0,2]", "f32[N,4]", "a scan over an axis of length 0 is empty"),
    (_cell(), "f32[N,5,3]", "f32[N,4]", "body @cell input %x is f32[N,2] but the scan passes f32[N,3] "
                                        "(step slice of scanned input 0)"),
    (_cell(), "f32[N,5,2]", "f32[N,3]", "body @cell input %h is f32[N,4] but the scan passes f32[N,3] (carry 0)"),
    (_cell(h_type="f32[N,3]", out_type="f32[N,4]").replace("tanh(%0)", "tanh(%0)"), "f32[N,5,2]", "f32[N,3]",
     "body @cell result 0 (the new carry 0) is f32[N,4] but carry 0 is f32[N,3]"),
    (_cell(extra="%9 = random_uniform_like(%0, %c) : f32[N,4]\n  ").replace(
        "%w: f32[2,4])", "%w: f32[2,4], %c: i64[])"), "f32[N,5,2]", "f32[N,4]", "body @cell takes 4 input(s)"),
])
def test_scan_rejects_a_body_that_does_not_fit(body, xs, carry, fragment):
    b, ins, region = _scan_node(body, xs, carry)
    with pytest.raises(ShapeError, match=None) as info:
        b.op("scan", *ins, body=region, num_carries=1, axis=1, name="rnn")
    assert "node 'rnn'" in str(info.value) and "'scan'" in str(info.value)
    assert fragment in str(info.value), str(info.value)


def test_scan_body_with_side_state_op_is_a_verifier_error():
    body = _cell(extra="%9 = random_uniform_like(%0, %c) : f32[N,4]\n  ").replace(
        "%w: f32[2,4])", "%w: f32[2,4], %c: i64[])")
    text = f"""graph @main(%h0: f32[N,4], %xs: f32[N,5,2], %w: f32[2,4], %c: i64[]) -> (h: f32[N,4]) {{
  %0, %1 = scan(%h0, %xs, %w, %c) {{body={body.rstrip().replace(chr(10), chr(10) + '  ')}, num_carries=1, axis=1}} : f32[N,4], f32[N,5,4] loc("rnn")
  return %0
}}
"""
    with pytest.raises(ParseError) as info:
        parse_graph(text)
    assert (info.value.line, info.value.column) == (2, 12)
    assert "node 'random_uniform_like' is not allowed in a scan body" not in str(info.value)
    assert "node random_uniform_like is not allowed in a scan body: op 'random_uniform_like' draws" in str(info.value)


def test_scan_symbolic_length_is_refused_clearly():
    b = GraphBuilder("main")
    xs = b.input("xs", TensorType(["N", 2]))
    body = parse_graph("graph @id(%x: f32[2]) -> (y: f32[2]) {\n  %0 = neg(%x) : f32[2]\n  return %0\n}\n")
    with pytest.raises(ShapeError, match=r"scanned input 0 f32\[N,2\]: the scan cannot run over the batch axis"):
        b.op("scan", xs, body=body, num_carries=0)


def test_scan_over_a_symbolic_sequence_length_runs_any_length():
    """A dynamic sequence length T: one graph, the trip count bound by the input at run time."""
    b = GraphBuilder("main")
    h0, xs = b.input("h0", TensorType(["N", 2])), b.input("xs", TensorType(["N", "T", 2]))
    body = parse_graph("graph @acc(%h: f32[N,2], %x: f32[N,2]) -> (h: f32[N,2], y: f32[N,2]) {\n"
                       "  %0 = add(%h, %x) : f32[N,2]\n  return %0, %0\n}\n")
    h, ys = b.op("scan", h0, xs, body=body, num_carries=1, axis=1)
    assert ys.type == TensorType(["N", "T", 2])
    g = b.build([h, ys], ["h", "ys"])
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)
    for steps in (1, 4, 9):
        x = np.random.default_rng(steps).normal(size=(3, steps, 2)).astype(np.float32)
        got_h, got_ys = run(g, [np.zeros((3, 2), np.float32), x])
        np.testing.assert_allclose(got_ys, np.cumsum(x, axis=1), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_h, x.sum(axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="length 0 is empty"):
        run(g, [np.zeros((3, 2), np.float32), np.zeros((3, 0, 2), np.float32)])


def test_scan_runs_in_the_interpreter_and_round_trips():
    b, ins, region = _scan_node(_cell())
    h, ys = b.op("scan", *ins, body=region, num_carries=1, axis=1, reverse=True, name="rnn")
    g = b.build([h, ys], ["h", "ys"])
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)
    rng = np.random.default_rng(0)
    h0, xs, w = rng.normal(size=(2, 4)), rng.normal(size=(2, 5, 2)), rng.normal(size=(2, 4))
    got_h, got_ys = run(g, [a.astype(np.float32) for a in (h0, xs, w)])
    want = np.stack([np.tanh(xs[:, t] @ w) for t in range(5)], axis=1)
    np.testing.assert_allclose(got_ys, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_h, want[:, 0], rtol=1e-5, atol=1e-6)  # reverse: the last step is t = 0
