"""Generators, iterators and PyDatasets as fit/evaluate/predict input, one epoch of batches at a time.

A stream's epoch is drawn batch by batch (each batch checked against the first one: its structure and
per-sample shapes, the error naming the step), then joined into arrays with the batch boundaries kept
as contiguous index ranges, so the array path (frontend/training/data.py) runs the steps. As Keras's
EpochIterator: with steps_per_epoch an iterator continues across epochs; when it runs dry before an
epoch's steps are done, a warning says so and training stops after that epoch.
"""
from __future__ import annotations

import itertools
import random
import warnings

import numpy as np

from kcompile.frontend.data import _combine
from kcompile.frontend.py_dataset import PyDataset

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or generator can "
           "generate at least `steps_per_epoch * epochs` batches.")


def is_stream(x) -> bool:
    """A generator, iterator or PyDataset (arrays, lists, dicts and kc.data.Datasets take other paths)."""
    return isinstance(x, PyDataset) or (hasattr(x, "__next__") and not hasattr(x, "shape"))


class BatchStream:
    """Batches from a stream; `epoch()` returns (x, y, sample_weight) joined, and the index range of each batch."""

    def __init__(self, source, steps, what, shuffle=False):
        self.source, self.steps, self.what, self.shuffle = source, steps, what, shuffle
        self.exhausted = False
        self._first = None   # (number of parts, per-sample shapes) of the first batch: the reference

    def num_steps(self):
        if isinstance(self.source, PyDataset):
            return self.steps or self.source.num_batches
        return self.steps

    def epoch(self):
        batches = list(self._draw())
        if not batches:
            return None, []
        parts = [_combine([b[i] for b in batches], _concat) if batches[0][i] is not None else None
                 for i in range(3)]
        bounds, start = [], 0
        for b in batches:
            n = _rows(b[0])
            bounds.append(np.arange(start, start + n))
            start += n
        return tuple(parts), bounds

    def _draw(self):
        if isinstance(self.source, PyDataset):
            yield from self._draw_py_dataset()
            return
        for step in range(self.steps) if self.steps else itertools.count():
            try:
                element = next(self.source)
            except StopIteration:
                self.exhausted = True
                if self.steps:
                    warnings.warn(RAN_OUT, stacklevel=4)
                return
            yield self._standardize(element, step)

    def _draw_py_dataset(self):
        ds = self.source
        ds.on_epoch_begin()
        n = ds.num_batches
        indices = list(range(self.steps if self.steps and (n is None or self.steps < n) else n))
        if self.shuffle:
            random.shuffle(indices)
        for step, i in enumerate(indices):
            yield self._standardize(ds[i], step)
        ds.on_epoch_end()

    def _standardize(self, element, step):
        """(x, y, sample_weight) from x, (x,), (x, y) or (x, y, sw) as keras.utils.unpack_x_y_sample_weight."""
        if isinstance(element, list):
            element = tuple(element)
        if not isinstance(element, tuple):
            element = (element,)
        if not 1 <= len(element) <= 3:
            raise ValueError(f"{self.what}: step {step}: the input yielded a tuple of {len(element)} elements; "
                             "expected x, (x, y) or (x, y, sample_weight)")
        parts = tuple(_arrays(p) for p in element) + (None,) * (3 - len(element))
        signature = (len(element), [_sample_shapes(p) for p in parts])
        if self._first is None:
            self._first = signature
        elif signature != self._first:
            raise ValueError(f"{self.what}: step {step}: the input yielded {_describe(signature)}, but step 0 "
                             f"yielded {_describe(self._first)}; every batch must have the same structure and "
                             "per-sample shapes")
        sizes = {_rows(p) for p in parts if p is not None}
        if len(sizes) > 1:
            raise ValueError(f"{self.what}: step {step}: the parts of the batch have different numbers of "
                             f"samples: {_describe(signature, rows=[_row_counts(p) for p in parts])}")
        return parts


def _arrays(part):
    from kcompile.frontend.data import _as_array, _map_structure
    if part is None:
        return None
    if isinstance(part, list):
        part = tuple(part)
    return _map_structure(_as_array, part)


def _leaves(part):
    from kcompile.frontend.data import _leaves as leaves
    return [] if part is None else leaves(part)


def _sample_shapes(part):
    return None if part is None else [tuple(a.shape[1:]) for a in _leaves(part)]


def _row_counts(part):
    return None if part is None else [len(a) for a in _leaves(part)]


def _rows(part) -> int:
    return len(_leaves(part)[0])


def _concat(arrays):
    return np.concatenate(arrays)


def _describe(signature, rows=None) -> str:
    n, shapes = signature
    names = ("x", "y", "sample_weight")[:n]
    items = []
    for k, name in enumerate(names):
        per = shapes[k] if rows is None else rows[k]
        what = "samples of shape " + ", ".join(map(str, per)) if rows is None else f"{per} samples"
        items.append(f"{name} with {what}")
    return f"({', '.join(items)})"
