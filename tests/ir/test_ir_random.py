"""random_uniform_like: range, determinism, sensitivity to counter and seed, rough uniformity."""
import numpy as np

from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run

import ir_oracles_nn as oracles_nn


def _uniform(shape, counter, seed=0):
    b = GraphBuilder("rng")
    x = b.input("x", TensorType(["N", *shape[1:]]))
    c = b.input("counter", TensorType([], "i64"))
    g = b.build([b.random_uniform_like(x, c, seed=seed)])
    return run(g, [np.zeros(shape, np.float32), np.array(counter, np.int64)])[0]


def test_range_dtype_and_determinism():
    u = _uniform((64, 33), 5)
    assert u.dtype == np.float32 and u.shape == (64, 33)
    assert u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_array_equal(u, _uniform((64, 33), 5))


def test_matches_the_documented_hash_formula():
    for counter, seed in ((0, 0), (3, 1), (2**32 + 7, 99), (-1, 5)):
        expected = np.array(oracles_nn.uniform(seed, counter, 40), np.float32).reshape(8, 5)
        np.testing.assert_array_equal(_uniform((8, 5), counter, seed), expected)


def test_counter_and_seed_change_everything():
    base = _uniform((32, 32), 10)
    for other in (_uniform((32, 32), 11), _uniform((32, 32), 10 + 2**32), _uniform((32, 32), 10, seed=1)):
        assert np.mean(base == other) < 0.01


def test_values_depend_on_flat_index_only():
    """So any batch size draws the same prefix: row i is the same in a batch of 3 and of 7."""
    np.testing.assert_array_equal(_uniform((3, 5), 4), _uniform((7, 5), 4)[:3])


def test_rough_uniformity():
    u = _uniform((200, 100), 123).ravel()
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - u.size / 20) ** 2 / (u.size / 20)).sum()
    assert chi2 < 50  # 19 degrees of freedom: p < 1e-4 above this
    neighbours = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(neighbours) < 0.03
