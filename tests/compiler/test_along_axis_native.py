"""cumsum, top_k and stop_gradient: native vs reference (odd sizes, both directions, ties, integers)."""
import numpy as np
import pytest

from kcompile.ir import TensorType

from native_util import assert_native_matches, one_op_graph, random_array


@pytest.mark.parametrize("shape,axis,reverse", [(("N", 13), 1, False), (("N", 5, 7), 1, True),
                                                (("N", 3, 4), -1, True), (("N", 6), 0, False)])
@pytest.mark.parametrize("dtype", ["f32", "i32"])
def test_cumsum(shape, axis, reverse, dtype):
    g = one_op_graph("cumsum", [TensorType(shape, dtype)], {"axis": axis, "reverse": reverse})
    rng = np.random.default_rng(0)
    assert_native_matches(g, lambda n: [random_array(rng, (n,) + shape[1:], g.inputs[0].type.dtype.np, -9, 9)])


@pytest.mark.parametrize("shape,k", [(("N", 13), 4), (("N", 3, 7), 7), (("N", 9), 1)])
@pytest.mark.parametrize("dtype", ["f32", "i32", "u8"])
def test_top_k_with_ties(shape, k, dtype):
    g = one_op_graph("top_k", [TensorType(shape, dtype)], {"k": k})
    rng = np.random.default_rng(1)
    # few distinct values: many ties, which must keep the lower index first
    assert_native_matches(g, lambda n: [rng.integers(0, 4, (n,) + shape[1:]).astype(g.inputs[0].type.dtype.np)])
    if dtype == "f32":
        assert_native_matches(g, lambda n: [random_array(rng, (n,) + shape[1:], np.float32)])


def test_stop_gradient_is_identity_natively():
    g = one_op_graph("stop_gradient", [TensorType(["N", 5])])
    rng = np.random.default_rng(2)
    assert_native_matches(g, lambda n: [random_array(rng, (n, 5), np.float32)])
