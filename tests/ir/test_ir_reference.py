"""The reference interpreter's boundary checks name the input, what it expected and what it got."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import InputError, run


def _graph():
    b = GraphBuilder("net")
    x = b.input("pixels", TensorType(["N", 4, 3]))
    ids = b.input("ids", TensorType(["N"], "i32"))
    w = b.param("dense/kernel", np.arange(6, dtype=np.float32).reshape(3, 2))
    y = b.matmul(b.reshape(x, shape=["N", 4, 3]), w)
    z = b.one_hot(ids, depth=2)
    return b.build([b.add(b.reduce_sum(y, axes=[1]), z)], ["scores"])


X = np.ones((5, 4, 3), np.float32)
IDS = np.array([0, 1, 1, 0, 1], np.int32)

BAD_INPUTS = [
    ([X[0], IDS], "input 'pixels': expected rank 3 f32[N,4,3], got shape (4, 3)"),
    ([X[:, :3], IDS], "input 'pixels': expected shape f32[N,4,3], got (5, 3, 3) (dimension 1)"),
    ([X, IDS[:4]], "input 'ids': batch size 4 differs from other inputs' batch 5"),
    ([X.astype(np.float64), IDS], "input 'pixels': expected dtype f32 (float32), got float64"),
    ([X, IDS.astype(np.int64)], "input 'ids': expected dtype i32 (int32), got int64"),
    ([X], "graph @net takes 2 inputs (pixels, ids), got 1"),
    ({"pixels": X}, "missing inputs ['ids'], unexpected inputs []"),
    ({"pixels": X, "ids": IDS, "labels": IDS}, "missing inputs [], unexpected inputs ['labels']"),
]


@pytest.mark.parametrize("inputs,message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_inputs_are_named(inputs, message):
    with pytest.raises(InputError) as info:
        run(_graph(), inputs)
    assert message in str(info.value) and "graph @net" in str(info.value)


def test_parameter_values_are_checked():
    g = _graph()
    with pytest.raises(InputError, match="parameter 'dense/kernel' expects f32\\[3,2\\], got float32\\[2, 3\\]"):
        run(g, [X, IDS], params={"dense/kernel": np.zeros((2, 3), np.float32)})
    bare = g.with_param_values({})
    bare.param_values.clear()
    with pytest.raises(InputError, match="no value for parameter 'dense/kernel'"):
        run(bare, [X, IDS])


def test_any_batch_size_and_dict_inputs_agree():
    g = _graph()
    x = np.random.default_rng(0).normal(size=(7, 4, 3)).astype(np.float32)
    ids = np.arange(7, dtype=np.int32) % 2
    full = run(g, {"ids": ids, "pixels": x})[0]
    assert full.shape == (7, 2)
    for n in (1, 3):
        np.testing.assert_allclose(run(g, [x[:n], ids[:n]])[0], full[:n], rtol=1e-6)
    expected = x.sum(axis=1) @ np.arange(6, dtype=np.float32).reshape(3, 2) + np.eye(2, dtype=np.float32)[ids]
    np.testing.assert_allclose(full, expected, rtol=1e-5)


def test_params_override_stored_values():
    g = _graph()
    out = run(g, [X, IDS], params={"dense/kernel": np.zeros((3, 2), np.float32)})[0]
    np.testing.assert_array_equal(out, np.eye(2, dtype=np.float32)[IDS])


def test_reference_errors_name_the_node():
    b = GraphBuilder("g")
    idx = b.input("idx", TensorType(["N"], "i64"))
    with b.location("embedding"):
        y = b.gather(b.constant(np.ones((4, 2), np.float32)), idx)
    with pytest.raises(ValueError, match="node 'embedding' \\(gather\\).*index out of range \\[0, 4\\): min 0, max 9"):
        run(b.build([y]), [np.array([0, 9])])


def test_batch_from_argument_when_no_input_carries_it():
    b = GraphBuilder("zeros")
    z = b.broadcast_to(b.constant(np.zeros(3, np.float32)), shape=["N", 3])
    g = b.build([z])
    assert run(g, [], batch=4)[0].shape == (4, 3)
    with pytest.raises(InputError, match="graph @zeros has values with a symbolic batch dimension .* pass batch="):
        run(g, [])
