"""kc.utils.get_file and Keras's imdb/reuters/boston_housing/mnist.npz loaders on small files made here in
Keras's formats: hashes checked before use, a bad hash loads nothing, offline errors name file, URL and
place; the preprocessing (shuffle seed, start/oov chars, index_from, num_words, skip_top, maxlen,
test_split) equals Keras's own loaders run on the same files. Nothing is downloaded."""
import hashlib
import json
import os
import urllib.error

import numpy as np
import pytest

import kcompile as kc


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Every test runs offline, with an empty cache: a download attempt fails as it would without network."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    calls = []

    def refuse(origin, target):
        calls.append(origin)
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr("kcompile.frontend.file_cache.download", refuse)
    return calls


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _sequences(rng, n):
    out = np.empty(n, dtype=object)
    out[:] = [[int(v) for v in rng.integers(1, 30, rng.integers(3, 12))] for _ in range(n)]   # Python ints, as Keras's files
    return out


def _imdb_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "imdb.npz"
    np.savez(path, x_train=_sequences(rng, 20), y_train=rng.integers(0, 2, 20), x_test=_sequences(rng, 10),
             y_test=rng.integers(0, 2, 10))
    return str(path)


def _reuters_file(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "reuters.npz"
    np.savez(path, x=_sequences(rng, 25), y=rng.integers(0, 46, 25))
    return str(path)


def _keras_datasets():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return pytest.importorskip("keras").datasets


def _same(ours, theirs):
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            assert len(x) == len(y)
            for u, v in zip(x, y):
                np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


@pytest.mark.parametrize("kwargs", [{}, {"num_words": 20, "skip_top": 2}, {"maxlen": 10, "start_char": None},
                                    {"oov_char": None, "num_words": 15, "index_from": 0}])
def test_imdb_preprocessing_matches_keras(tmp_path, kwargs, monkeypatch):
    path = _imdb_file(tmp_path)
    ours = kc.datasets.imdb.load_data(path=path, file_hash=_sha256(path), **kwargs)
    keras_ds = _keras_datasets()
    from keras.src.datasets import imdb as keras_imdb
    monkeypatch.setattr(keras_imdb, "get_file", lambda fname, **kw: fname)   # Keras's loader, our file
    theirs = keras_ds.imdb.load_data(path=path, **kwargs)
    _same(ours, theirs)


@pytest.mark.parametrize("kwargs", [{}, {"num_words": 12, "test_split": 0.3, "seed": 5}, {"maxlen": 8}])
def test_reuters_preprocessing_matches_keras(tmp_path, kwargs, monkeypatch):
    path = _reuters_file(tmp_path)
    ours = kc.datasets.reuters.load_data(path=path, file_hash=_sha256(path), **kwargs)
    keras_ds = _keras_datasets()
    from keras.src.datasets import reuters as keras_reuters
    monkeypatch.setattr(keras_reuters, "get_file", lambda fname, *a, **kw: fname)
    theirs = keras_ds.reuters.load_data(path=path, **kwargs)
    _same(ours, theirs)


def test_boston_housing_and_mnist_npz(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "boston_housing.npz"
    x, y = rng.random((30, 13)).astype("float32"), rng.random(30).astype("float32")
    np.savez(path, x=x, y=y)
    (xtr, ytr), (xte, yte) = kc.datasets.boston_housing.load_data(path=str(path), file_hash=_sha256(path),
                                                                  test_split=0.2)
    order = np.arange(30)
    np.random.RandomState(113).shuffle(order)
    np.testing.assert_array_equal(xtr, x[order[:24]])
    np.testing.assert_array_equal(yte, y[order[24:]])
    mnist = tmp_path / "mnist.npz"
    np.savez(mnist, x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.arange(4, dtype=np.uint8),
             x_test=np.ones((2, 28, 28), np.uint8), y_test=np.arange(2, dtype=np.uint8))
    (a, b), (c, d) = kc.datasets.mnist.load_data(path=str(mnist), file_hash=_sha256(mnist))
    assert a.shape == (4, 28, 28) and list(d) == [0, 1]


def test_word_index_is_checked_and_read(tmp_path):
    path = tmp_path / "imdb_word_index.json"
    path.write_text(json.dumps({"the": 1, "and": 2}))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()   # Keras pins the word indexes with MD5
    assert kc.datasets.imdb.get_word_index(path=str(path), file_hash=md5) == {"the": 1, "and": 2}


def test_a_file_with_the_wrong_hash_is_never_loaded(tmp_path, offline):
    path = _imdb_file(tmp_path)
    with pytest.raises(OSError, match=r"could not download imdb.npz from https://storage.googleapis.com/"
                                      r"tensorflow/tf-keras-datasets/imdb.npz.*place the file at .*imdb.npz"):
        kc.datasets.imdb.load_data(path=path)   # Keras's pinned hash: our small file does not match it
    assert offline == ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"]
    assert os.path.exists(path)   # the mismatching file is left alone, unused


def test_offline_without_a_cached_file_names_file_url_and_place(tmp_path):
    with pytest.raises(OSError) as err:
        kc.datasets.boston_housing.load_data()
    msg = str(err.value)
    assert "boston_housing.npz" in msg and "tf-keras-datasets/boston_housing.npz" in msg
    assert os.path.join(str(tmp_path / "keras_home"), "datasets", "boston_housing.npz") in msg


def test_get_file_verifies_a_download_before_keeping_it(tmp_path, monkeypatch):
    payload = b"weights"

    def fake_download(origin, target):
        with open(target, "wb") as f:
            f.write(payload)
    monkeypatch.setattr("kcompile.frontend.file_cache.download", fake_download)
    good = hashlib.sha256(payload).hexdigest()
    path = kc.utils.get_file("w.bin", origin="https://example.invalid/w.bin", file_hash=good,
                             cache_dir=str(tmp_path), cache_subdir="models")
    assert path == str(tmp_path / "models" / "w.bin") and open(path, "rb").read() == payload
    with pytest.raises(ValueError, match="hash .* is not the pinned"):
        kc.utils.get_file("v.bin", origin="https://example.invalid/v.bin", file_hash="0" * 64,
                          cache_dir=str(tmp_path))
    assert not os.path.exists(tmp_path / "datasets" / "v.bin")
    assert not [f for f in os.listdir(tmp_path / "datasets") if f.startswith(".download-")]


def _cifar_archive(tmp_path, name, inner, files):
    """A .tar.gz in CIFAR's layout: each file a pickled dict with bytes keys, as the Toronto archives."""
    import io
    import pickle
    import tarfile
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for fname, content in files.items():
            blob = pickle.dumps(content, protocol=4)
            info = tarfile.TarInfo(f"{inner}/{fname}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return str(path)


def _cifar_batch(rng, n, **labels):
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            **{k.encode(): [int(v) for v in vals] for k, vals in labels.items()}}


def test_cifar10_and_cifar100_from_verified_archives(tmp_path):
    rng = np.random.default_rng(4)
    files = {f"data_batch_{i}": _cifar_batch(rng, 3, labels=rng.integers(0, 10, 3)) for i in range(1, 6)}
    files["test_batch"] = _cifar_batch(rng, 2, labels=[1, 9])
    path = _cifar_archive(tmp_path, "cifar-10-python.tar.gz", "cifar-10-batches-py", files)
    (x, y), (xt, yt) = kc.datasets.cifar10.load_data(path=path, file_hash=_sha256(path))
    assert x.shape == (15, 32, 32, 3) and x.dtype == np.uint8 and y.shape == (15, 1) and yt.ravel().tolist() == [1, 9]
    first = files["data_batch_1"][b"data"][0].reshape(3, 32, 32)
    np.testing.assert_array_equal(x[0], first.transpose(1, 2, 0))   # channels_last, as Keras
    files100 = {"train": _cifar_batch(rng, 4, fine_labels=[5, 50, 99, 0], coarse_labels=[1, 2, 3, 4]),
                "test": _cifar_batch(rng, 2, fine_labels=[7, 8], coarse_labels=[9, 10])}
    path100 = _cifar_archive(tmp_path, "cifar-100-python.tar.gz", "cifar-100-python", files100)
    (x, y), _ = kc.datasets.cifar100.load_data(label_mode="coarse", path=path100, file_hash=_sha256(path100))
    assert x.shape == (4, 32, 32, 3) and y.ravel().tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="label_mode"):
        kc.datasets.cifar100.load_data(label_mode="medium")


def test_cifar_batches_admit_numpy_arrays_only(tmp_path):
    """Even a verified archive cannot run code: the unpickler refuses every global but NumPy's array ones."""
    path = _cifar_archive(tmp_path, "evil.tar.gz", "cifar-10-batches-py",
                          {f"data_batch_{i}": {b"data": os.getcwd} for i in range(1, 6)})
    with pytest.raises(Exception, match="Refusing to deserialize"):
        kc.datasets.cifar10.load_data(path=path, file_hash=_sha256(path))


# -- fashion_mnist: the Fashion-MNIST project's published MD5s (Keras pins none) ------------------------
def _idx_gz(path, array):
    import gzip
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def _fashion_files(tmp_path, n_train=5, n_test=3):
    folder = tmp_path / "keras_home" / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test)}
    return {name: _idx_gz(folder / name, a) for name, a in arrays.items()}, arrays


def test_fashion_mnist_pins_the_project_checksums_and_reads_the_cache(tmp_path, offline):
    assert kc.datasets.FASHION_MNIST_MD5["train-images-idx3-ubyte.gz"] == "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    hashes, arrays = _fashion_files(tmp_path)
    (x_train, y_train), (x_test, y_test) = kc.datasets.fashion_mnist.load_data(file_hashes=hashes)
    assert x_train.dtype == np.uint8 and x_train.shape == (5, 28, 28) and y_test.shape == (3,)
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert offline == []


def test_fashion_mnist_with_the_real_pins_refuses_other_files_and_names_the_url(tmp_path, offline):
    _fashion_files(tmp_path)      # small files whose MD5 is not the project's: re-fetched, and offline that fails
    with pytest.raises(OSError, match=r"train-labels-idx1-ubyte.gz from https://storage.googleapis.com/tensorflow/"
                                      r"tf-keras-datasets/train-labels-idx1-ubyte.gz.*place the file at .*fashion-mnist"):
        kc.datasets.fashion_mnist.load_data()
