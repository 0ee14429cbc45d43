"""kc.datasets: MNIST (IDX .gz files in a folder, or Keras's mnist.npz), Keras's imdb, reuters and
boston_housing (keras_datasets.py: fetched into Keras's cache and verified), scikit-learn's bundled sets.

Each loader returns ((x_train, y_train), (x_test, y_test)). The scikit-learn sets are split with a
fixed permutation (seed 0, 20% test), so every run sees the same split.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from kcompile.frontend.cifar_datasets import cifar10, cifar100  # noqa: F401
from kcompile.frontend.keras_datasets import boston_housing, imdb, load_mnist_npz, reuters  # noqa: F401

MNIST_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
               "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped): magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int)
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values for shape {tuple(dims)}, got {body.size}")
    return body.reshape(tuple(dims)).copy()


class mnist:
    """MNIST digits: uint8 images (n, 28, 28) and uint8 labels, as keras.datasets.mnist."""

    @staticmethod
    def load_data(path=None, file_hash=None):
        """A folder of the four IDX .gz files (path= or $KCOMPILE_MNIST_DIR), else Keras's mnist.npz
        (`path` a file name or path, default "mnist.npz" in Keras's cache, fetched and verified)."""
        folder = path or os.environ.get("KCOMPILE_MNIST_DIR")
        if folder is None or not os.path.isdir(folder):
            try:
                return load_mnist_npz(path or "mnist.npz", file_hash)
            except OSError as e:
                raise OSError(f"{e}; or pass path=<folder with the four IDX .gz files> "
                              f"({', '.join(MNIST_FILES.values())}) or set KCOMPILE_MNIST_DIR") from None
        missing = [f for f in MNIST_FILES.values() if not os.path.isfile(os.path.join(folder, f))]
        if missing:
            raise FileNotFoundError(f"mnist.load_data: {folder} lacks {missing}")
        arr = {k: read_idx(os.path.join(folder, f)) for k, f in MNIST_FILES.items()}
        return (arr["x_train"], arr["y_train"]), (arr["x_test"], arr["y_test"])


# Keras pins no hashes for Fashion-MNIST; these are the MD5 checksums the Fashion-MNIST project publishes
# (github.com/zalandoresearch/fashion-mnist, README "Get the Data"), checked before a file is read.
FASHION_MNIST_MD5 = {"train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                     "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                     "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
                     "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79"}


class fashion_mnist:
    """Fashion-MNIST: uint8 images (n, 28, 28) and uint8 labels 0..9, from Keras's origin and cache folder."""

    @staticmethod
    def load_data(file_hashes=None):
        """`file_hashes` ({file name: hash}, default the project's MD5s) lets tests use small files."""
        from kcompile.frontend.file_cache import get_file
        from kcompile.frontend.keras_datasets import ORIGIN
        hashes = {**FASHION_MNIST_MD5, **(file_hashes or {})}
        arrays = {}
        for name, file_hash in hashes.items():
            path = get_file(name, origin=ORIGIN + name, file_hash=file_hash,
                            cache_subdir=os.path.join("datasets", "fashion-mnist"))
            arrays[name.split("-")[0] + ("_images" if "images" in name else "_labels")] = read_idx(path)
        x_train, y_train = arrays["train_images"], arrays["train_labels"]
        x_test, y_test = arrays["t10k_images"], arrays["t10k_labels"]
        for x, y, which in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
            if x.ndim != 3 or len(x) != len(y):
                raise ValueError(f"fashion_mnist: the {which} files hold images {x.shape} and labels {y.shape}")
        return (x_train, y_train), (x_test, y_test)


def _split(x, y, test_fraction=0.2, seed=0):
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


def _sklearn(name: str):
    try:
        import sklearn.datasets as skd
    except ImportError:
        raise ImportError(f"kc.datasets.{name} needs scikit-learn (pip install scikit-learn)") from None
    return getattr(skd, f"load_{name}")(return_X_y=True)


def _loader(name: str, y_dtype, doc: str):
    class Dataset:
        @staticmethod
        def load_data(test_fraction=0.2, seed=0):
            x, y = _sklearn(name)
            return _split(np.asarray(x, np.float32), np.asarray(y, y_dtype), test_fraction, seed)
    Dataset.__name__ = Dataset.__qualname__ = name
    Dataset.__doc__ = doc
    return Dataset


digits = _loader("digits", np.int64, "8x8 digit images flattened to 64 float32 features (0..16); 10 classes")
iris = _loader("iris", np.int64, "4 float32 features; 3 classes")
breast_cancer = _loader("breast_cancer", np.int64, "30 float32 features; 2 classes")
diabetes = _loader("diabetes", np.float32, "10 float32 features; a float32 regression target")
