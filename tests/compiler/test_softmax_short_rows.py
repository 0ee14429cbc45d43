"""softmax/log_softmax over rows shorter than a vector (MNIST's 10 classes) run in narrower vectors."""
import numpy as np
import pytest

from kcompile.compiler.target import host_target
from kcompile.ir import TensorType
from native_util import assert_native_matches, one_op_graph, random_array


@pytest.mark.parametrize("target", [None, host_target().without("avx512f")], ids=["host", "avx2"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("k,dtype", [(2, "f32"), (3, "f32"), (7, "f64"), (10, "f32"), (15, "f32")])
def test_short_rows(target, op, k, dtype):
    g = one_op_graph(op, [TensorType(["N", k], dtype)], {"axis": -1})
    rng = np.random.default_rng(k)
    np_dtype = np.float32 if dtype == "f32" else np.float64
    assert_native_matches(g, lambda n: [random_array(rng, (n, k), np_dtype, -20, 20)], rtol=3e-6, atol=2e-6,
                          target=target)
