"""kc.utils.pad_sequences (parity with Keras), timeseries_dataset_from_array and split_dataset (Keras's
window and split rules), normalize, to_categorical."""
import os

import numpy as np
import pytest

import kcompile as kc

os.environ.setdefault("KERAS_BACKEND", "jax")


@pytest.mark.parametrize("kwargs", [{}, {"maxlen": 2}, {"padding": "post"}, {"truncating": "post", "maxlen": 2},
                                    {"value": -1, "dtype": "float32", "maxlen": 4}])
def test_pad_sequences_matches_keras(kwargs):
    keras = pytest.importorskip("keras")
    seqs = [[1, 2, 3], [4], [], [5, 6]]
    np.testing.assert_array_equal(kc.utils.pad_sequences(seqs, **kwargs), keras.utils.pad_sequences(seqs, **kwargs))
    steps = [np.ones((3, 2)), np.zeros((1, 2))]   # multi-feature steps keep their shape
    np.testing.assert_array_equal(kc.utils.pad_sequences(steps, **kwargs), keras.utils.pad_sequences(steps, **kwargs))


def test_pad_sequences_bad_arguments():
    with pytest.raises(ValueError, match="Padding type"):
        kc.utils.pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="position 1"):
        kc.utils.pad_sequences([np.ones((2, 2)), np.ones((2, 3))])


def test_timeseries_windows_and_targets_follow_keras():
    data = np.arange(100)
    # Keras's docstring example: sequences of 10 steps, every 2nd step; the target of a window is the step after
    ds = kc.utils.timeseries_dataset_from_array(data[:-10], data[10:], sequence_length=5, sampling_rate=2,
                                                sequence_stride=3, batch_size=4, start_index=1)
    batches = list(ds)
    x0, y0 = batches[0]
    np.testing.assert_array_equal(x0[0], [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(x0[1], [4, 6, 8, 10, 12])
    np.testing.assert_array_equal(y0[:2], [11, 14])   # targets[start_index + start]
    xs = np.concatenate([b[0] for b in batches])
    assert len(xs) == len(range(0, 90 - 1 - 8, 3)) and x0.shape == (4, 5)
    assert all(len(b[0]) <= 4 for b in batches)
    shuffled = np.concatenate(list(kc.utils.timeseries_dataset_from_array(
        data, None, sequence_length=4, batch_size=8, shuffle=True, seed=1)))
    assert sorted(map(tuple, shuffled)) == [tuple(range(i, i + 4)) for i in range(97)]
    with pytest.raises(ValueError, match="sequence_stride"):
        kc.utils.timeseries_dataset_from_array(data, None, 5, sequence_stride=0)


def test_split_dataset_sizes_and_contents():
    x, y = np.arange(10.0)[:, None], np.arange(10)
    left, right = kc.utils.split_dataset((x, y), left_size=0.8)
    left, right = list(left), list(right)
    assert len(left) == 8 and len(right) == 2 and right[0][1] == 8
    a, b = kc.utils.split_dataset(x, left_size=3, right_size=0.5, shuffle=True, seed=0)
    got = np.concatenate([np.stack(list(a)), np.stack(list(b))])[:, 0]
    assert len(list(a)) == 3 and len(list(b)) == 5 and len(set(got.tolist())) == 8
    ds = kc.data.Dataset.from_tensor_slices({"f": x})
    first, second = kc.utils.split_dataset(ds, right_size=4)
    assert [e["f"][0] for e in second] == [6.0, 7.0, 8.0, 9.0]
    with pytest.raises(ValueError, match="left_size"):
        kc.utils.split_dataset(x, left_size=1.5)
    with pytest.raises(ValueError, match="greater than 1"):
        kc.utils.split_dataset(x, left_size=0.7, right_size=0.6)


def test_normalize_and_to_categorical_match_keras():
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).standard_normal((4, 3))
    x[1] = 0
    for kwargs in ({}, {"axis": 1}, {"order": 1}):   # (Keras turns axis=0 into -1: not compared)
        np.testing.assert_allclose(kc.utils.normalize(x, **kwargs), keras.utils.normalize(x, **kwargs), rtol=1e-6)
    np.testing.assert_array_equal(kc.utils.to_categorical([[1], [2], [0]], 4), keras.utils.to_categorical([[1], [2], [0]], 4))
