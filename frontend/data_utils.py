"""kc.utils's data helpers: pad_sequences, timeseries_dataset_from_array and split_dataset, as Keras 3.

pad_sequences follows keras/src/utils/sequence_utils.py; the other two build kc.data.Datasets with
the same windows and split sizes as Keras's grain/torch versions (which need no TensorFlow).
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend.data import Dataset, _leaves, _map_structure


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """A (len(sequences), maxlen, ...) array: each sequence truncated and padded at the start ("pre")
    or the end ("post")."""
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    lengths, sample_shape = [], None
    for x in sequences:
        if not hasattr(x, "__len__"):
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {x}")
        lengths.append(len(x))
        if sample_shape is None and len(x):   # the first non-empty sequence gives the step shape
            sample_shape = np.asarray(x).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        maxlen = int(np.max(lengths)) if lengths else 0
    is_str = np.issubdtype(np.dtype(dtype), np.str_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\nYou should set "
                         "`dtype=object` for variable length strings.")
    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        if truncating == "pre":
            trunc = s[-maxlen:]
        elif truncating == "post":
            trunc = s[:maxlen]
        else:
            raise ValueError(f'Truncating type "{truncating}" not understood')
        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"Shape of sample {trunc.shape[1:]} of sequence at position {i} is different from "
                             f"expected shape {sample_shape}")
        if padding == "post":
            out[i, :len(trunc)] = trunc
        elif padding == "pre":
            out[i, -len(trunc):] = trunc
        else:
            raise ValueError(f'Padding type "{padding}" not understood')
    return out


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Windows of `sequence_length` steps (every `sampling_rate`-th) starting every `sequence_stride`
    steps; window i's target is targets[start_index + its start]. A batched kc.data.Dataset."""
    n = len(data)
    for name, value in (("sampling_rate", sampling_rate), ("sequence_stride", sequence_stride)):
        if value <= 0 or value >= n:
            raise ValueError(f"`{name}` must be higher than 0 and lower than the length of the data. "
                             f"Received: {name}={value} for data of length {n}")
    if start_index is not None and not 0 <= start_index < n:
        raise ValueError(f"`start_index` must be 0 or greater and lower than the length of the data. "
                         f"Received: start_index={start_index} for data of length {n}")
    if end_index is not None and (end_index <= (start_index or 0) or end_index > n):
        raise ValueError(f"`end_index` must be higher than `start_index` and at most the length of the data. "
                         f"Received: end_index={end_index} for data of length {n}")
    start_index = start_index or 0
    end_index = n if end_index is None else end_index
    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    starts = np.arange(0, max(num_seqs, 0), sequence_stride)
    if shuffle:
        np.random.RandomState(np.random.randint(1000000) if seed is None else seed).shuffle(starts)
    window = np.arange(0, sequence_length * sampling_rate, sampling_rate)
    data_slice = np.asarray(data[start_index:end_index])
    windows = data_slice[starts[:, None] + window[None, :]] if len(starts) else \
        np.zeros((0, sequence_length) + data_slice.shape[1:], data_slice.dtype)
    elements = windows if targets is None else (windows, np.asarray(targets[start_index:])[starts])
    ds = Dataset.from_tensor_slices(elements) if len(starts) else Dataset(lambda: iter(()))
    return ds if batch_size is None else ds.batch(batch_size)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Two kc.data.Datasets of samples (an array, a tuple/dict of arrays, or an unbatched Dataset),
    sized as Keras: an int is a count, a float a fraction (rounded); a missing side takes the rest."""
    if isinstance(dataset, Dataset):
        if dataset.batch_size is not None:
            raise ValueError("split_dataset: pass an unbatched Dataset (split it, then batch each part)")
        samples = list(dataset)
        if not samples:
            raise ValueError("split_dataset: the dataset is empty")
        arrays = _stack(samples)
    else:
        arrays = _map_structure(np.asarray, tuple(dataset) if isinstance(dataset, list) else dataset)
    total = len(_leaves(arrays)[0])
    if left_size is None and right_size is None:
        left_size = 0.5
    left, right = _split_sizes(left_size, right_size, total)
    order = np.random.default_rng(seed).permutation(total) if shuffle else np.arange(total)
    pick = (lambda idx: Dataset.from_tensor_slices(_map_structure(lambda a: a[idx], arrays)))
    return pick(order[:left]), pick(order[left:left + right])


def _stack(samples):
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(_stack([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _stack([s[k] for s in samples]) for k in first}
    return np.stack(samples)


def _split_sizes(left_size, right_size, total):
    """keras.utils.dataset_utils._rescale_dataset_split_sizes."""
    for name, size in (("left_size", left_size), ("right_size", right_size)):
        if size is None:
            continue
        if type(size) not in (int, float):
            raise TypeError(f"Invalid `{name}` type: expected an int or a float, got {type(size).__name__}")
        if (type(size) is int and not 0 < size < total) or (type(size) is float and not 0 < size < 1):
            raise ValueError(f"`{name}` should be an int in (0, {total}) or a float in (0, 1). "
                             f"Received: {name}={size}")
    if type(left_size) is float and type(right_size) is float and left_size + right_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than or "
                         "equal to 1.")
    left = round(left_size * total) if type(left_size) is float else left_size
    right = round(right_size * total) if type(right_size) is float else right_size
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the number of samples "
                         f"{total}. Received: left_size + right_size = {left + right}")
    if left == 0 or right == 0:
        raise ValueError(f"With a dataset of {total} samples, left_size={left_size} and right_size={right_size} "
                         "leave one side empty")
    return int(left), int(right)
