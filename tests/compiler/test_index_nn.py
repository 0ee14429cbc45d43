"""gather/scatter_add/one_hot, softmax/log_softmax, random_uniform_like, matmul: native vs reference."""
import numpy as np
import pytest

from kcompile.compiler.jit import NativeError, compile_graph
from kcompile.ir import TensorType

from native_util import assert_native_matches, one_op_graph, random_array


@pytest.mark.parametrize("idx_dt", ["i32", "i64", "u8"])
def test_gather_rows_and_columns(idx_dt):
    g = one_op_graph("gather", [TensorType([11, 5]), TensorType(["N", 3], idx_dt)], {"axis": 0})
    rng = np.random.default_rng(0)
    assert_native_matches(g, lambda n: [random_array(rng, (11, 5), np.float32),
                                        rng.integers(0, 11, (n, 3)).astype(g.inputs[1].type.dtype.np)])
    g = one_op_graph("gather", [TensorType(["N", 7, 2]), TensorType([4], idx_dt)], {"axis": 1})
    assert_native_matches(g, lambda n: [random_array(rng, (n, 7, 2), np.float32),
                                        np.array([6, 0, 3, 6], g.inputs[1].type.dtype.np)])


def test_gather_out_of_range_raises_and_stays_in_bounds():
    g = one_op_graph("gather", [TensorType([4, 3]), TensorType(["N"], "i32")], {"axis": 0})
    fn = compile_graph(g)
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    for bad in (4, -1, 1 << 30):
        with pytest.raises(NativeError, match="out of range"):
            fn([data, np.array([0, bad], np.int32)])
    np.testing.assert_array_equal(fn([data, np.array([3, 1], np.int32)])[0], data[[3, 1]])


def test_scatter_add_and_one_hot():
    g = one_op_graph("scatter_add", [TensorType([6], "i64"), TensorType([3, 6, 2])], {"shape": (3, 5, 2), "axis": 1})
    rng = np.random.default_rng(1)
    assert_native_matches(g, lambda n: [np.array([4, 0, 4, 2, 1, 4]), random_array(rng, (3, 6, 2), np.float32)],
                          batches=(None,))
    fn = compile_graph(g)
    with pytest.raises(NativeError):
        fn([np.array([5, 0, 0, 0, 0, 0]), np.ones((3, 6, 2), np.float32)])
    g = one_op_graph("one_hot", [TensorType(["N", 2], "i32")], {"depth": 7})
    assert_native_matches(g, lambda n: [rng.integers(-2, 9, (n, 2)).astype(np.int32)])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_softmax(op, axis):
    g = one_op_graph(op, [TensorType(["N", 5, 19])], {"axis": axis})
    rng = np.random.default_rng(2)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 5, 19), np.float32, -20, 20)], rtol=3e-6, atol=2e-6)


def test_random_uniform_is_bit_identical():
    g = one_op_graph("random_uniform_like", [TensorType(["N", 37]), TensorType([], "i64")], {"seed": 1234567})
    for counter in (0, 5, (1 << 40) + 3, -1):
        assert_native_matches(g, lambda n: [np.zeros((n, 37), np.float32), np.int64(counter)], rtol=0, atol=0)


@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul(ta, tb):
    g = one_op_graph("matmul", [TensorType([2, 9, 7] if ta else [2, 7, 9]), TensorType([9, 13] if not tb else [13, 9])],
                     {"transpose_a": ta, "transpose_b": tb})
    rng = np.random.default_rng(3)
    assert_native_matches(g, lambda n: [random_array(rng, g.inputs[0].type.shape, np.float32),
                                        random_array(rng, g.inputs[1].type.shape, np.float32)], batches=(None,),
                          rtol=1e-5, atol=1e-5)
    g = one_op_graph("matmul", [TensorType(["N", 17]), TensorType([17, 5])])
    assert_native_matches(g, lambda n: [random_array(rng, (n, 17), np.float32), random_array(rng, (17, 5), np.float32)],
                          rtol=1e-5, atol=1e-5)
    g = one_op_graph("matmul", [TensorType(["N", 3, 4], "i32"), TensorType([4, 2], "i32")])
    assert_native_matches(g, lambda n: [random_array(rng, (n, 3, 4), np.int32), random_array(rng, (4, 2), np.int32)])
