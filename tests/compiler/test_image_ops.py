"""resize and affine_transform: native code vs the reference (resize to 1e-6; affine_transform bit
for bit, every interpolation and fill mode, per-image and shared transforms, NaN/huge coordinates)."""
import numpy as np
import pytest

from kcompile.ir import TensorType

from native_util import assert_native_matches, one_op_graph, random_array

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(14, 18), (3, 4), (7, 5)])
def test_resize(size, interp):
    g = one_op_graph("resize", [TensorType(["N", 7, 9, 3])], {"size": size, "interpolation": interp})
    assert_native_matches(g, lambda n: [random_array(RNG, (n, 7, 9, 3), np.float32)], rtol=1e-6, atol=1e-6)


def _warps(n):
    t = np.zeros((n, 8), np.float32)
    for i in range(n):
        a, s = RNG.uniform(-3, 3), RNG.uniform(0.5, 1.5)
        t[i, :6] = [s * np.cos(a), -s * np.sin(a), RNG.uniform(-9, 9), s * np.sin(a), s * np.cos(a), RNG.uniform(-9, 9)]
        t[i, 6:] = RNG.uniform(-0.01, 0.01, 2)
    return t


@pytest.mark.parametrize("mode", ["constant", "nearest", "wrap", "mirror", "reflect"])
@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_affine_transform_bit_exact(mode, interp):
    g = one_op_graph("affine_transform", [TensorType(["N", 6, 7, 3]), TensorType(["N", 8])],
                     {"interpolation": interp, "fill_mode": mode, "fill_value": 0.5})
    assert_native_matches(g, lambda n: [random_array(RNG, (n, 6, 7, 3), np.float32), _warps(n)], rtol=0, atol=0)


def test_affine_transform_shared_transform_size_one_axis_and_nan():
    g = one_op_graph("affine_transform", [TensorType(["N", 1, 5, 2]), TensorType([8])], {"fill_mode": "mirror"})
    assert_native_matches(g, lambda n: [random_array(RNG, (n, 1, 5, 2), np.float32), _warps(1)[0]], rtol=0, atol=0)
    g = one_op_graph("affine_transform", [TensorType(["N", 4, 5, 2]), TensorType([1, 8])], {"fill_mode": "reflect"})
    wild = np.array([[np.nan, 0, 0, 0, 1, 0, 0, 0]], np.float32)        # NaN and a k = 0 division (inf)
    assert_native_matches(g, lambda n: [random_array(RNG, (n, 4, 5, 2), np.float32), wild], rtol=0, atol=0)
    blowup = np.array([[1, 0, 0, 0, 1, 0, 1, 0]], np.float32) * np.float32(-1)   # k = 1 - x crosses zero
    assert_native_matches(g, lambda n: [random_array(RNG, (n, 4, 5, 2), np.float32), blowup], rtol=0, atol=0)
