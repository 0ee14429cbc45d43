"""kc.datasets.imdb, reuters, boston_housing and mnist's Keras file: Keras's origins, pinned hashes and
preprocessing (keras/src/datasets), through kc.utils.get_file.

Every loader takes `file_hash` (Keras's pinned value by default) so tests can feed small files in the
same format; an archive is opened, and object arrays unpickled, only after its hash matched.
"""
from __future__ import annotations

import json

import numpy as np

from kcompile.frontend.file_cache import get_file

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
HASHES = {   # as keras/src/datasets pins them (the word indexes: MD5, as Keras)
    "mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    "imdb.npz": "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    "imdb_word_index.json": "bfafd718b763782e994055a2d397834f",
    "reuters.npz": "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
    "reuters_word_index.json": "4d44cc38712099c9e383dc6e5f11a921",
    "boston_housing.npz": "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
}


def _fetch(path, name, file_hash):
    return get_file(fname=path, origin=ORIGIN + name, file_hash=HASHES[name] if file_hash is None else file_hash)


def _word_index(path, name, file_hash):
    with open(_fetch(path, name, file_hash)) as f:
        return json.load(f)


def _remove_long_seq(maxlen, seqs, labels):
    kept = [(x, y) for x, y in zip(seqs, labels) if len(x) < maxlen]
    return [x for x, _ in kept], [y for _, y in kept]


def _encode(xs, start_char, index_from):
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    return [[w + index_from for w in x] for x in xs] if index_from else [list(x) for x in xs]


def _vocabulary(xs, num_words, skip_top, oov_char):
    num_words = num_words or max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def _shuffled(rng, *arrays):
    order = np.arange(len(arrays[0]))
    rng.shuffle(order)
    return [a[order] for a in arrays]


class imdb:
    """IMDB reviews as word-index sequences (most frequent word = 1), sentiment labels 0/1."""

    @staticmethod
    def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
                  index_from=3, file_hash=None):
        with np.load(_fetch(path, "imdb.npz", file_hash), allow_pickle=True) as f:   # verified: its pinned hash
            x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        rng = np.random.RandomState(seed)
        x_train, y_train = _shuffled(rng, x_train, y_train)
        x_test, y_test = _shuffled(rng, x_test, y_test)
        x_train, x_test = _encode(x_train, start_char, index_from), _encode(x_test, start_char, index_from)
        if maxlen:
            x_train, y_train = _remove_long_seq(maxlen, x_train, y_train)
            x_test, y_test = _remove_long_seq(maxlen, x_test, y_test)
            if not x_train or not x_test:
                raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
                                 "Increase maxlen.")
        xs = _vocabulary(x_train + x_test, num_words, skip_top, oov_char)
        labels = np.concatenate([y_train, y_test])
        n = len(x_train)
        return (_objects(xs[:n]), labels[:n]), (_objects(xs[n:]), labels[n:])

    @staticmethod
    def get_word_index(path="imdb_word_index.json", file_hash=None):
        return _word_index(path, "imdb_word_index.json", file_hash)


class reuters:
    """Reuters newswires as word-index sequences, 46 topics; split by test_split after a seeded shuffle."""

    @staticmethod
    def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113,
                  start_char=1, oov_char=2, index_from=3, file_hash=None):
        with np.load(_fetch(path, "reuters.npz", file_hash), allow_pickle=True) as f:   # verified first
            xs, labels = f["x"], f["y"]
        xs, labels = _shuffled(np.random.RandomState(seed), xs, labels)
        xs = _encode(xs, start_char, index_from)
        if maxlen:
            xs, labels = _remove_long_seq(maxlen, xs, labels)
        xs = _vocabulary(xs, num_words, skip_top, oov_char)
        n = int(len(xs) * (1 - test_split))
        return (_objects(xs[:n]), np.array(labels[:n])), (_objects(xs[n:]), np.array(labels[n:]))

    @staticmethod
    def get_word_index(path="reuters_word_index.json", file_hash=None):
        return _word_index(path, "reuters_word_index.json", file_hash)


class boston_housing:
    """Boston house prices: 13 features, the median value in k$; split by test_split after a seeded shuffle."""

    @staticmethod
    def load_data(path="boston_housing.npz", test_split=0.2, seed=113, file_hash=None):
        if not 0 <= test_split < 1:
            raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 and 1 "
                             "(exclusive of 1).")
        with np.load(_fetch(path, "boston_housing.npz", file_hash), allow_pickle=False) as f:
            x, y = f["x"], f["y"]
        x, y = _shuffled(np.random.RandomState(seed), x, y)
        n = int(len(x) * (1 - test_split))
        return (np.array(x[:n]), np.array(y[:n])), (np.array(x[n:]), np.array(y[n:]))


def load_mnist_npz(path="mnist.npz", file_hash=None):
    """Keras's mnist.npz (the four arrays), verified like the other files."""
    with np.load(_fetch(path, "mnist.npz", file_hash), allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _objects(seqs) -> np.ndarray:
    out = np.empty(len(seqs), dtype=object)
    out[:] = seqs
    return out
