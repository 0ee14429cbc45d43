"""The verifier rejects each kind of malformed graph, saying what is wrong and where."""
import numpy as np
import pytest

from kcompile.ir import Graph, GraphBuilder, Node, TensorType, Value, VerificationError, verify

T = TensorType(["N", 3])


def _leaf(name="x", type=T):
    return Value(type, name)


def _node(op, inputs, out_types, attrs=None, name=None):
    return Node(op, inputs, attrs or {}, out_types, name)


def _graph(inputs, nodes, outputs, params=(), **kw):
    return Graph("bad", inputs, params, nodes, outputs, **kw)


def _use_before_def():
    x = _leaf()
    late = _node("neg", [x], [T])
    early = _node("relu", [late.outputs[0]], [T], name="act")
    return _graph([x], [early, late], [early.outputs[0]])


def _other_graph_value():
    other = GraphBuilder("other")
    foreign = other.relu(other.input("y", T))
    x = _leaf()
    n = _node("add", [x, foreign], [T])
    return _graph([x], [n], [n.outputs[0]])


def _type_mismatch():
    x = _leaf()
    n = _node("reduce_sum", [x], [TensorType(["N", 3])], {"axes": (1,), "keepdims": False}, name="sum_1")
    return _graph([x], [n], [n.outputs[0]])


def _dtype_mismatch():
    x = _leaf()
    n = _node("less", [x, x], [T])
    return _graph([x], [n], [n.outputs[0]])


def _unnormalized_attrs():
    x = _leaf()
    n = _node("softmax", [x], [T], {})  # the default axis is missing
    return _graph([x], [n], [n.outputs[0]])


def _unnormalized_attr_value():
    x = _leaf()
    n = _node("reduce_sum", [x], [TensorType(["N"])], {"axes": [1], "keepdims": False})  # list, not tuple
    return _graph([x], [n], [n.outputs[0]])


def _unknown_attr():
    x = _leaf()
    n = _node("relu", [x], [T], {"alpha": 0.2})
    return _graph([x], [n], [n.outputs[0]])


def _bad_attr_value():
    x = _leaf()
    n = _node("softmax", [x], [T], {"axis": "last"})
    return _graph([x], [n], [n.outputs[0]])


def _duplicate_definition():
    x = _leaf()
    n = _node("neg", [x], [T])
    return _graph([x], [n, n], [n.outputs[0]])


def _input_redefined():
    x = _leaf()
    n = _node("neg", [x], [T])
    n.outputs[0].name = "y"
    return _graph([x, n.outputs[0]], [n], [n.outputs[0]])


def _wrong_output_count():
    x = _leaf()
    n = _node("split", [x], [TensorType(["N", 1])], {"axis": 1, "sections": (1, 2)})
    return _graph([x], [n], [n.outputs[0]])


def _no_outputs():
    x = _leaf()
    return _graph([x], [_node("neg", [x], [T])], [])


def _undefined_output():
    x = _leaf()
    n = _node("neg", [x], [T])
    return _graph([x], [n], [_leaf("ghost")])


def _duplicate_output_names():
    x = _leaf()
    return _graph([x], [], [x, x], output_names=["y", "y"])


def _too_few_output_names():
    x = _leaf()
    return _graph([x], [], [x, x], output_names=["y"])


def _duplicate_inputs():
    return _graph([_leaf("x"), _leaf("x")], [], [])


def _unnamed_input():
    x = _leaf(None)
    return _graph([x], [], [x])


def _duplicate_params():
    x = _leaf()
    p, q = (Value(TensorType([3]), "w", param_name="w") for _ in range(2))
    return _graph([x], [], [x], params=[p, q])


def _param_value_shape():
    x = _leaf()
    p = Value(TensorType([3]), "w", param_name="w")
    return _graph([x], [], [x], params=[p], param_values={"w": np.zeros((4,), np.float32)})


def _param_value_dtype():
    x = _leaf()
    p = Value(TensorType([3]), "w", param_name="w")
    return _graph([x], [], [x], params=[p], param_values={"w": np.zeros((3,), np.float64)})


def _value_for_unknown_param():
    x = _leaf()
    return _graph([x], [], [x], param_values={"w": np.zeros((3,), np.float32)})


def _batched_param():
    x = _leaf()
    return _graph([x], [], [x], params=[Value(T, "w", param_name="w")])


def _unknown_op():
    x = _leaf()
    n = _node("frobnicate", [x], [T], name="mystery")
    return _graph([x], [n], [n.outputs[0]])


def _wrong_arity():
    x = _leaf()
    n = _node("add", [x], [T])
    return _graph([x], [n], [n.outputs[0]])


def _not_a_value():
    x = _leaf()
    n = _node("neg", [x], [T])
    n.inputs = (np.zeros(3),)
    return _graph([x], [n], [n.outputs[0]])


MALFORMED = [
    (_use_before_def, "node #0 node 'act' (relu): input 0 (value: f32[N,3]) is used before its definition"),
    (_other_graph_value, "node #0 node add: input 1 (value: f32[N,3]) is not defined in this graph"),
    (_type_mismatch, "node #0 node 'sum_1' (reduce_sum): output 0 has type f32[N,3], inference gives f32[N]"),
    (_dtype_mismatch, "output 0 has type f32[N,3], inference gives bool[N,3]"),
    (_unnormalized_attrs, "attributes {} are not normalized (expected {'axis': -1})"),
    (_unnormalized_attr_value, "are not normalized"),
    (_unknown_attr, "op 'relu' has no attribute(s) ['alpha']"),
    (_bad_attr_value, "attribute 'axis' expects int, got 'last'"),
    (_duplicate_definition, "node #1 node neg: output 0 (value) is defined twice (SSA)"),
    (_input_redefined, "input %y must not have a producer"),
    (_wrong_output_count, "has 1 outputs, op defines 2"),
    (_no_outputs, "graph @bad: has no outputs"),
    (_undefined_output, "output 0 (%ghost: f32[N,3]) is not defined in the graph"),
    (_duplicate_output_names, "output names ['y', 'y'] must be unique, one per output"),
    (_too_few_output_names, "output names ['y'] must be unique, one per output"),
    (_duplicate_inputs, "input names must be unique and non-empty, got 'x'"),
    (_unnamed_input, "input names must be unique and non-empty, got None"),
    (_duplicate_params, "parameter names must be unique, got 'w'"),
    (_param_value_shape, "parameter 'w' has type f32[3] but its value is float32[4]"),
    (_param_value_dtype, "parameter 'w' has type f32[3] but its value is float64[3]"),
    (_value_for_unknown_param, "values given for unknown parameters ['w']"),
    (_batched_param, "parameter 'w' must have a static shape, got f32[N,3]"),
    (_unknown_op, "node #0 node 'mystery' (frobnicate): unknown op 'frobnicate'"),
    (_wrong_arity, "op 'add' takes 2 input(s) (a, b), got 1"),
    (_not_a_value, "node #0 node neg: input 0 is not a Value"),
]


@pytest.mark.parametrize("make,message", MALFORMED, ids=[m[0].__name__.strip("_") for m in MALFORMED])
def test_verifier_rejects(make, message):
    with pytest.raises(VerificationError) as info:
        verify(make())
    assert message in str(info.value)
    assert str(info.value).startswith("graph @bad")


def test_verifier_accepts_and_returns_a_sound_graph():
    b = GraphBuilder("good")
    x = b.input("x", T)
    y = b.softmax(b.add(x, b.param("bias", np.zeros(3, np.float32))))
    g = b.build([y])
    assert verify(g) is g
