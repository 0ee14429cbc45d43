"""kc.pruning schedules and masks against TF-MOT's formulas (hand-computed values and loop oracles)."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.frontend.pruning import masks as M

P = kc.pruning


# -- schedules ---------------------------------------------------------------------------------
def test_polynomial_decay_formula_and_steps():
    s = P.PolynomialDecay(0.2, 0.8, begin_step=0, end_step=100, power=3, frequency=10)
    assert s(0) == (True, pytest.approx(0.2))
    assert s(50)[1] == pytest.approx(0.8 + (0.2 - 0.8) * 0.5 ** 3)      # 0.725
    assert s(100) == (True, pytest.approx(0.8))
    assert s(250)[1] == pytest.approx(0.8) and s(250)[0] is False       # past end_step: no pruning
    assert s(55)[0] is False and s(60)[0] is True
    assert P.PolynomialDecay(0.0, 0.9, 0, 1000, power=1)(250)[1] == pytest.approx(0.225)


def test_should_prune_in_step_matches_tfmot():
    s = P.ConstantSparsity(0.5, begin_step=10, end_step=100, frequency=20)
    pruned = [step for step in range(0, 140) if s(step)[0]]
    assert pruned == [10, 30, 50, 70, 90]
    forever = P.ConstantSparsity(0.5, begin_step=3, frequency=4)
    assert forever(3)[0] and forever(1_000_003)[0] and not forever(1_000_004)[0] and not forever(2)[0]
    assert forever(12345)[1] == pytest.approx(0.5)


def test_schedule_config_round_trip():
    s = P.PolynomialDecay(0.1, 0.7, 5, 50, power=2, frequency=7)
    config = s.get_config()
    assert config["class_name"] == "PolynomialDecay"
    s2 = P.PolynomialDecay.from_config(config["config"])
    assert [s2(i) for i in range(60)] == [s(i) for i in range(60)]


@pytest.mark.parametrize("make, message", [
    (lambda: P.ConstantSparsity(1.0, 0), "target_sparsity must be in range"),
    (lambda: P.ConstantSparsity(-0.1, 0), "target_sparsity must be in range"),
    (lambda: P.PolynomialDecay(0.0, 1.2, 0, 10), "final_sparsity must be in range"),
    (lambda: P.PolynomialDecay(0.0, 0.5, 20, 10), "begin_step .20. should be <= end_step .10."),
    (lambda: P.PolynomialDecay(0.0, 0.5, 0, -1), "end_step cannot be -1"),
    (lambda: P.ConstantSparsity(0.5, -1), "begin_step should be >= 0"),
    (lambda: P.ConstantSparsity(0.5, 0, frequency=0), "frequency should be > 0"),
])
def test_schedule_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# -- masks -------------------------------------------------------------------------------------
def test_magnitude_mask_count_rounding_and_ties():
    w = np.arange(1, 11, dtype=np.float32) * np.where(np.arange(10) % 2, 1, -1)
    threshold, mask = M.magnitude_mask(w, 0.25)           # round(10 * 0.75) = round(7.5) = 8 (half to even)
    assert mask.sum() == 8 and threshold == 3.0 and mask[:2].sum() == 0
    _, mask = M.magnitude_mask(w, 0.35)                    # round(6.5) = 6
    assert mask.sum() == 6
    threshold, mask = M.magnitude_mask(np.array([1, 2, -2, 3], np.float32), 0.5)
    assert threshold == 2.0 and mask.tolist() == [0, 1, 1, 1]   # ties at the threshold are all kept
    _, mask = M.magnitude_mask(np.array([4, 1, 2], np.float32), 0.99)
    assert mask.tolist() == [1, 0, 0]                      # at least one weight is kept


def test_block_mask_pools_blocks():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 24)).astype(np.float32)
    for pooling, pool in (("AVG", np.mean), ("MAX", np.max)):
        _, mask = M.block_mask(w, 0.5, (4, 8), pooling)
        scores, decisions = [], []
        for i in range(0, 16, 4):
            for j in range(0, 24, 8):
                block = mask[i:i + 4, j:j + 8]
                assert block.min() == block.max()
                scores.append(pool(np.abs(w[i:i + 4, j:j + 8])))
                decisions.append(block[0, 0])
        order = np.argsort(scores)[::-1]
        assert np.array(decisions)[order].tolist() == [1] * 6 + [0] * 6


def test_whole_neuron_and_filter_blocks():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 4, 10)).astype(np.float32)
    block = M.resolve_block((-1, 1), kernel.shape, "test")
    assert block == (36, 1)
    _, mask = M.block_mask(kernel, 0.3, block, "AVG")
    per_filter = mask.reshape(-1, 10)
    assert (per_filter.min(0) == per_filter.max(0)).all() and per_filter[0].sum() == 7
    norms = np.abs(kernel).reshape(-1, 10).mean(0)
    assert set(np.argsort(norms)[:3]) == set(np.flatnonzero(per_filter[0] == 0))


def test_m_by_n_mask_dense_and_conv():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(8, 6)).astype(np.float32)
    mask = M.m_by_n_mask(kernel, (2, 4))
    for out in range(6):
        for g in range(0, 8, 4):
            group, kept = np.abs(kernel[g:g + 4, out]), mask[g:g + 4, out]
            assert kept.sum() == 2 and set(np.flatnonzero(kept)) == set(np.argsort(group)[-2:])
    conv = rng.normal(size=(3, 3, 8, 5)).astype(np.float32)
    mask = M.m_by_n_mask(conv, (1, 4))
    assert (mask.reshape(3, 3, 2, 4, 5).sum(axis=3) == 3).all()
    # ties keep the lower index first, as tf.math.top_k
    assert M.m_by_n_mask(np.ones((4, 1), np.float32), (2, 4))[:, 0].tolist() == [1, 1, 0, 0]


def test_shape_checks_name_the_layer():
    with pytest.raises(ValueError, match="layer 'd'.*multiple of 4.*10 inputs"):
        M.check_m_by_n((2, 4), (10, 3), "layer 'd'")
    with pytest.raises(ValueError, match="layer 'd'.*0 < m < n"):
        M.check_m_by_n((4, 4), (8, 3), "layer 'd'")
    with pytest.raises(ValueError, match="layer 'd'.*block_size \\(3, 1\\) does not divide"):
        M.resolve_block((3, 1), (10, 4), "layer 'd'")
