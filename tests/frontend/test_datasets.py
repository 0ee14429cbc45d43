"""kc.datasets (offline MNIST from IDX files, scikit-learn sets with a fixed split) and kc.utils."""
import gzip
import os

import numpy as np
import pytest

import kcompile as kc

MNIST_DIR = "/work/shared/data/mnist"


def _write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_from_a_folder_of_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 255, (5, 28, 28)),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, (5,)),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 255, (2, 28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, (2,))}
    for name, arr in arrays.items():
        _write_idx(tmp_path / name, arr)
    (x, y), (xt, yt) = kc.datasets.mnist.load_data(path=str(tmp_path))
    assert x.shape == (5, 28, 28) and x.dtype == np.uint8 and yt.shape == (2,)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte.gz"])


def test_mnist_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("KCOMPILE_MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))

    def offline(origin, target):
        raise OSError("no network")
    monkeypatch.setattr("kcompile.frontend.file_cache.download", offline)
    with pytest.raises(OSError, match="mnist.npz.*https://storage.googleapis.com.*place the file.*KCOMPILE_MNIST_DIR"):
        kc.datasets.mnist.load_data()
    with pytest.raises(FileNotFoundError, match="lacks"):
        kc.datasets.mnist.load_data(path=str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="MNIST IDX files not present")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("KCOMPILE_MNIST_DIR", MNIST_DIR)
    (x, y), (xt, yt) = kc.datasets.mnist.load_data()
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert set(np.unique(y)) == set(range(10)) and y.dtype == np.uint8


def test_sklearn_sets_fixed_split():
    pytest.importorskip("sklearn")
    (x, y), (xt, yt) = kc.datasets.digits.load_data()
    assert x.shape[1] == 64 and x.dtype == np.float32 and len(x) + len(xt) == 1797
    assert abs(len(xt) - 0.2 * 1797) < 1
    (x2, _), _ = kc.datasets.digits.load_data()
    np.testing.assert_array_equal(x, x2)
    (xi, yi), _ = kc.datasets.iris.load_data()
    assert xi.shape[1] == 4 and set(np.unique(yi)) <= {0, 1, 2}
    (xb, _), _ = kc.datasets.breast_cancer.load_data()
    (xd, yd), _ = kc.datasets.diabetes.load_data()
    assert xb.shape[1] == 30 and xd.shape[1] == 10 and yd.dtype == np.float32


def test_to_categorical():
    out = kc.utils.to_categorical([0, 2, 1])
    assert out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]] and out.dtype == np.float64
    assert kc.utils.to_categorical(np.array([[1], [0]]), 3).shape == (2, 3)
    with pytest.raises(ValueError, match="labels must be in"):
        kc.utils.to_categorical([3], 3)


def test_plot_model(tmp_path, monkeypatch):
    m = kc.Sequential([kc.Input(shape=(3,)), kc.layers.Dense(2, name="d")])
    dot = kc.utils.model_to_dot(m, show_shapes=True)
    assert "d (Dense)|output: (None, 2)" in dot and dot.count("->") == 1
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(OSError, match="'dot'"):
        kc.utils.plot_model(m, to_file=str(tmp_path / "m.png"))


@pytest.mark.skipif(__import__("shutil").which("dot") is None, reason="graphviz's dot is not installed")
def test_plot_model_renders_png_and_svg(tmp_path):
    inp = kc.Input(shape=(4,), name="features")
    left, right = kc.layers.Dense(3, name="left")(inp), kc.layers.Dense(3, name="right")(inp)
    model = kc.Model(inp, kc.layers.Add(name="sum")([left, right]))
    png, svg = tmp_path / "m.png", tmp_path / "m.svg"
    kc.utils.plot_model(model, to_file=str(png), show_shapes=True)
    kc.utils.plot_model(model, to_file=str(svg))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<svg" in text and all(name in text for name in ("features", "left", "right", "sum"))
