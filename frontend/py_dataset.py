"""kc.utils.PyDataset (and its Keras 2 name Sequence): batches by index, for fit/evaluate/predict."""
from __future__ import annotations


class PyDataset:
    """Subclass it and define `__len__` (the number of batches) and `__getitem__(index)` returning x,
    (x, y) or (x, y, sample_weight) for one batch. fit visits every index once per epoch (shuffled
    when fit's shuffle=True, as Keras) and calls `on_epoch_end` after each epoch. The batches are read
    in the calling thread: workers and use_multiprocessing are accepted and have no effect."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers, self._use_multiprocessing, self._max_queue_size = workers, use_multiprocessing, max_queue_size

    @property
    def workers(self):
        return self._workers

    @property
    def use_multiprocessing(self):
        return self._use_multiprocessing

    @property
    def max_queue_size(self):
        return self._max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ (or num_batches)")

    @property
    def num_batches(self):
        """The number of batches: len(self) (None for an endless PyDataset, as Keras)."""
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


Sequence = PyDataset
