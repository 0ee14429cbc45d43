"""Reductions, arg reductions and layout ops: native vs reference at odd sizes and several batches."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType

from native_util import assert_native_matches, one_op_graph, random_array


def _run(op, types, attrs, rtol=1e-5, atol=1e-5, low=-3, high=3):
    g = one_op_graph(op, [TensorType(s, dt) for s, dt in types], attrs)
    rng = np.random.default_rng(7)

    def inputs(n):
        return [random_array(rng, tuple(n if d == "N" else d for d in s), g.inputs[i].type.dtype.np, low, high)
                for i, (s, dt) in enumerate(types)]
    return assert_native_matches(g, inputs, rtol=rtol, atol=atol)


REDUCE_CASES = [((), False), ((-1,), False), ((1,), True), ((0,), False), ((0, 2), True), ((1, 2), False),
                ((0, 1, 2), False)]


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"])
@pytest.mark.parametrize("axes,keepdims", REDUCE_CASES)
def test_reductions_f32(op, axes, keepdims):
    low, high = (0.8, 1.2) if op == "reduce_prod" else (-3, 3)
    _run(op, [(("N", 5, 19), "f32")], {"axes": axes, "keepdims": keepdims}, low=low, high=high)


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_min"])
@pytest.mark.parametrize("dt", ["i32", "u8", "i64"])
def test_reductions_int(op, dt):
    _run(op, [(("N", 7, 3), dt)], {"axes": (1,)}, low=0, high=9)
    _run(op, [(("N", 37), dt)], {"axes": (0,)}, low=0, high=9)


@pytest.mark.parametrize("op", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_arg_reductions(op, axis):
    _run(op, [(("N", 6, 11), "f32")], {"axis": axis})
    _run(op, [(("N", 6, 11), "i32")], {"axis": axis, "keepdims": True}, low=0, high=4)  # ties: first index


def test_transpose_and_views_as_outputs():
    _run("transpose", [(("N", 3, 5, 7), "f32")], {"perm": (0, 2, 3, 1)})
    _run("transpose", [((3, 5), "i64")], {"perm": (1, 0)})
    _run("reshape", [(("N", 3, 5), "f32")], {"shape": ("N", 15)})
    _run("expand_dims", [(("N", 3), "f32")], {"axes": (1,)})
    _run("squeeze", [(("N", 1, 3), "u8")], {"axes": (1,)})


def test_views_inside_a_graph_alias_and_stay_correct():
    b = GraphBuilder("views")
    x = b.input("x", TensorType(["N", 4, 6]))
    r = b.reshape(b.exp(x), shape=("N", 24))
    y = b.add(b.expand_dims(b.reduce_sum(r, axes=(1,)), axes=(1,)), r)
    g = b.build([y, b.squeeze(b.reshape(r, shape=("N", 24, 1)), axes=(2,))])
    rng = np.random.default_rng(0)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 4, 6), np.float32)], rtol=2e-6)


def test_empty_batches_through_layout_and_sums():
    g = one_op_graph("reduce_sum", [TensorType(["N", 4])], {"axes": (0,)})
    assert_native_matches(g, lambda n: [np.zeros((n, 4), np.float32)], batches=(0, 2))
    for op, attrs in (("transpose", {"perm": (0, 2, 1)}), ("softmax", {"axis": -1}),
                      ("pad", {"pads": (0, 0, 1, 1, 0, 2)}), ("concat", {"axis": 1})):
        types = [TensorType(["N", 3, 2])] * (2 if op == "concat" else 1)
        g = one_op_graph(op, types, attrs)
        assert_native_matches(g, lambda n: [np.ones((n, 3, 2), np.float32)] * len(types), batches=(0,))


def test_concat_split_slice_pad():
    _run("concat", [(("N", 3, 5), "f32"), (("N", 2, 5), "f32"), (("N", 4, 5), "f32")], {"axis": 1})
    _run("concat", [(("N", 3), "i32"), (("N", 7), "i32")], {"axis": -1})
    _run("split", [(("N", 11, 3), "f32")], {"axis": 1, "sections": (2, 0, 9)})
    _run("slice", [(("N", 13, 7), "f32")], {"axes": (1, 2), "starts": (1, -5), "ends": (12, 100), "steps": (3, 2)})
    _run("slice", [((9,), "i64")], {"axes": (0,), "starts": (-2,), "ends": (-9,), "steps": ()})
    _run("pad", [(("N", 3, 5, 2), "f32")], {"pads": (0, 0, 1, 2, 0, 3, 1, 1), "value": -1.5})
    _run("pad", [((4,), "i32")], {"pads": (2, 1), "value": 7.0})
