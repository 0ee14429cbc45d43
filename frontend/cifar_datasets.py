"""kc.datasets.cifar10 and cifar100: Keras's archives (origins and pinned SHA-256), extracted only after
the archive's hash matched, and each batch file unpickled with an unpickler that admits only NumPy's
array-rebuilding globals (as Keras's RestrictedUnpickler). Images come back (n, 32, 32, 3) uint8
(channels_last, kcompile's only layout), labels (n, 1) uint8."""
from __future__ import annotations

import os
import pickle

import numpy as np

from kcompile.frontend.file_cache import get_file

_ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                      ("numpy._core.multiarray", "_reconstruct")})
CIFAR10 = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
           "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")
CIFAR100 = ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Refusing to deserialize `{module}.{name}` while loading a CIFAR batch: "
                                     "the file may be corrupted or malicious")


def load_batch(fpath, label_key="labels"):
    """(data (n, 3, 32, 32), labels) from one CIFAR batch file (a pickled dict with bytes keys)."""
    with open(fpath, "rb") as f:
        d = {k.decode("utf8"): v for k, v in _NumpyOnlyUnpickler(f, encoding="bytes").load().items()}
    data = np.asarray(d["data"], np.uint8)
    return data.reshape(data.shape[0], 3, 32, 32), np.asarray(d[label_key], np.uint8)


def _archive(path, origin_hash, file_hash, inner):
    origin, pinned = origin_hash
    folder = get_file(fname=path, origin=origin, file_hash=pinned if file_hash is None else file_hash, extract=True)
    return os.path.join(folder, inner)


def _layout(x, y):
    return x.transpose(0, 2, 3, 1), y.reshape(len(y), 1)


class cifar10:
    """50,000 training and 10,000 test 32x32 colour images in 10 classes."""

    @staticmethod
    def load_data(path="cifar-10-python.tar.gz", file_hash=None):
        folder = _archive(path, CIFAR10, file_hash, "cifar-10-batches-py")
        parts = [load_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)]
        x_train = np.concatenate([p[0] for p in parts])
        y_train = np.concatenate([p[1] for p in parts])
        x_test, y_test = load_batch(os.path.join(folder, "test_batch"))
        return _layout(x_train, y_train), _layout(x_test, y_test)


class cifar100:
    """50,000 training and 10,000 test 32x32 colour images in 100 fine (or 20 coarse) classes."""

    @staticmethod
    def load_data(label_mode="fine", path="cifar-100-python.tar.gz", file_hash=None):
        if label_mode not in ("fine", "coarse"):
            raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.')
        folder = _archive(path, CIFAR100, file_hash, "cifar-100-python")
        train = load_batch(os.path.join(folder, "train"), label_key=f"{label_mode}_labels")
        test = load_batch(os.path.join(folder, "test"), label_key=f"{label_mode}_labels")
        return _layout(*train), _layout(*test)
