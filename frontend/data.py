"""kc.data.Dataset: the small part of tf.data the book's loops use, iterating NumPy arrays.

A Dataset is a recipe: `from_tensor_slices` slices arrays (or a tuple/dict of arrays) along the first
axis; `shuffle`, `map`, `batch`, `take`, `repeat` and `prefetch` return new recipes; iterating runs
the recipe and yields elements (NumPy arrays, in the structure given). Iteration is synchronous:
`prefetch` is accepted and changes nothing. fit/evaluate/predict take a batched Dataset of (x, y) or
(x, y, sample_weight) (x alone for predict): see `fit_arrays`.
"""
from __future__ import annotations

import numpy as np

AUTOTUNE = -1


class Dataset:
    """An iterable pipeline over NumPy elements (a tuple, a dict, or a single array)."""

    def __init__(self, make, batch_size=None, shuffled=False):
        self._make = make               # () -> iterator of elements
        self.batch_size = batch_size    # set once batched (the size of full batches)
        self.shuffled = shuffled

    @staticmethod
    def from_tensor_slices(tensors) -> "Dataset":
        arrays = _map_structure(_as_array, tensors)
        leaves = _leaves(arrays)
        n = len(leaves[0]) if leaves and leaves[0].ndim else None
        if n is None or any(a.ndim == 0 or len(a) != n for a in leaves):
            shapes = [a.shape for a in leaves]
            raise ValueError(f"Dataset.from_tensor_slices: every array needs the same first dimension, got {shapes}")
        return Dataset(lambda: (_map_structure(lambda a: a[i], arrays) for i in range(n)))

    def __iter__(self):
        return iter(self._make())

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        if int(batch_size) < 1:
            raise ValueError(f"Dataset.batch: batch_size must be >= 1, got {batch_size}")
        size = int(batch_size)

        def make():
            chunk = []
            for element in self._make():
                chunk.append(element)
                if len(chunk) == size:
                    yield _combine(chunk, np.stack)
                    chunk = []
            if chunk and not drop_remainder:
                yield _combine(chunk, np.stack)
        return Dataset(make, size, self.shuffled)

    def shuffle(self, buffer_size: int, seed=None, reshuffle_each_iteration=True) -> "Dataset":
        """tf.data's buffered shuffle: each element is drawn at random from the next buffer_size ones."""
        if int(buffer_size) < 1:
            raise ValueError(f"Dataset.shuffle: buffer_size must be >= 1, got {buffer_size}")
        base = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % 2**63)
        state = {"epoch": 0}

        def make():
            epoch = state["epoch"]
            if reshuffle_each_iteration:
                state["epoch"] += 1
            rng = np.random.default_rng((base, epoch))
            buffer = []
            for element in self._make():
                buffer.append(element)
                if len(buffer) >= buffer_size:
                    yield buffer.pop(int(rng.integers(len(buffer))))
            while buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        return Dataset(make, self.batch_size, True)

    def map(self, fn, num_parallel_calls=None, deterministic=None) -> "Dataset":
        """fn on each element (a tuple is passed as separate arguments, as tf.data); results become NumPy."""
        def make():
            for element in self._make():
                out = fn(*element) if isinstance(element, tuple) else fn(element)
                yield _map_structure(_as_array, out)
        return Dataset(make, self.batch_size, self.shuffled)

    def take(self, count: int) -> "Dataset":
        def make():
            for i, element in enumerate(self._make()):
                if i >= count:
                    return
                yield element
        return Dataset(make, self.batch_size, self.shuffled)

    def repeat(self, count=None) -> "Dataset":
        def make():
            k = 0
            while count is None or k < count:
                yield from self._make()
                k += 1
        return Dataset(make, self.batch_size, self.shuffled)

    def prefetch(self, buffer_size=AUTOTUNE) -> "Dataset":
        return self

    def cache(self, filename="") -> "Dataset":
        return self

    def as_numpy_iterator(self):
        return iter(self)


def fit_arrays(dataset: Dataset, what: str):
    """(x, y, sample_weight, batch_size, shuffle) for fit/evaluate/predict from a batched Dataset.

    The dataset is run once and its batches concatenated; fit then batches the arrays with the
    dataset's batch size, reshuffling every epoch when the dataset shuffles (tf.data's default).
    """
    if dataset.batch_size is None:
        raise ValueError(f"{what}: the Dataset must be batched (call .batch(batch_size)), as Keras expects")
    batches = list(dataset)
    if not batches:
        raise ValueError(f"{what}: the Dataset is empty")
    first = batches[0]
    parts = first if isinstance(first, tuple) else (first,)
    if len(parts) > 3:
        raise ValueError(f"{what}: Dataset elements must be x, (x, y) or (x, y, sample_weight); got {len(parts)}")
    columns = [[b[i] if isinstance(b, tuple) else b for b in batches] for i in range(len(parts))]
    merged = [_combine(c, np.concatenate) for c in columns] + [None] * (3 - len(parts))
    return merged[0], merged[1], merged[2], dataset.batch_size, dataset.shuffled


def unpack_dataset(x, y, sample_weight, batch_size, shuffle, what):
    """fit/evaluate/predict's arguments with a Dataset `x` replaced by its arrays (else unchanged)."""
    if not isinstance(x, Dataset):
        return x, y, sample_weight, batch_size, shuffle
    if y is not None or sample_weight is not None:
        raise ValueError(f"{what}: when x is a Dataset, y and sample_weight come from it and must not be given")
    return fit_arrays(x, what)


def _as_array(x):
    from kcompile.frontend.tensor import KTensor, to_array
    if isinstance(x, KTensor):
        return x.numpy()
    return to_array(x) if not isinstance(x, np.ndarray) else x


def _map_structure(fn, x):
    if isinstance(x, tuple):
        return tuple(_map_structure(fn, y) for y in x)
    if isinstance(x, dict):
        return {k: _map_structure(fn, v) for k, v in x.items()}
    return fn(x)


def _leaves(x) -> list:
    if isinstance(x, tuple):
        return [a for y in x for a in _leaves(y)]
    if isinstance(x, dict):
        return [a for v in x.values() for a in _leaves(v)]
    return [x]


def _combine(parts, join):
    """Join same-structured elements leaf by leaf (np.stack to batch, np.concatenate to merge)."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_combine([p[i] for p in parts], join) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _combine([p[k] for p in parts], join) for k in first}
    return join(parts)
