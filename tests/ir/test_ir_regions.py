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
