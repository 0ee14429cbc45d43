"""The CLI on front-end models: a saved model (loaded without running code), --train."""
from __future__ import annotations

import numpy as np
import pytest

from kcompile.cli import main

kc = pytest.importorskip("kcompile")

KERAS_PY = """
import kcompile as kc
from kcompile import layers
model = kc.Sequential([kc.Input(shape=(4,)), layers.Dense(8, activation="relu"),
                       layers.Dense(3, activation="softmax")], name="tiny")
"""


def _error(capsys, status, fragment):
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and fragment in err[0], err


def test_saved_model_compiles_to_the_same_predictions(tmp_path):
    from kcompile import layers
    from kcompile.runtime import load
    model = kc.Sequential([kc.Input(shape=(5,)), layers.Dense(6, activation="tanh"), layers.Dense(2)], name="saved")
    model.save(tmp_path / "saved.kcompile")
    assert main([str(tmp_path / "saved.kcompile"), "-o", str(tmp_path / "art"), "--emit", "so,onnx"]) == 0
    x = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(load(tmp_path / "art").predict(x), want, atol=1e-5, rtol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(tmp_path / "art" / "saved.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], want, atol=1e-5, rtol=0)


def test_corrupt_saved_model_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.kcompile"
    bad.write_bytes(b"not a zip archive")
    status = main([str(bad), "-o", str(tmp_path / "out"), "--emit", "ir"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1 and err[0].startswith("kcompile: error: ")
    assert not (tmp_path / "out").exists()


def test_train_step_graph_and_errors(tmp_path, capsys):
    src = tmp_path / "k.py"
    src.write_text(KERAS_PY)
    _error(capsys, main([str(src), "-o", str(tmp_path / "o"), "--emit", "opt", "--train"]),
           "no training configuration")
    assert main([str(src), "-o", str(tmp_path / "o"), "--emit", "opt,ir", "--train",
                 "--loss", "sparse_categorical_crossentropy", "--optimizer", "adam"]) == 0
    text = (tmp_path / "o" / "tiny.train_step.opt.kir").read_text()
    assert '%y: f32[N]' in text and 'param "optimizer/momentum/dense' in text  # layer names count up per process
    assert "(train_step)" in capsys.readouterr().out


def test_train_artifact_updates_weights_in_place(tmp_path):
    from kcompile.runtime import load
    src = tmp_path / "k.py"
    src.write_text(KERAS_PY)
    assert main([str(src), "-o", str(tmp_path / "art"), "--train", "--loss", "sparse_categorical_crossentropy",
                 "--optimizer", "sgd"]) == 0
    art = load(tmp_path / "art")
    names = [s["name"] for s in art.manifest["entry_points"]["train_step"]["inputs"]]
    assert names[0].startswith("input_layer") and names[1:] == ["y", "__rng_counter", "__learning_rate", "__iterations"]
    x = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    y = (np.arange(16) % 3).astype(np.float32)
    before = art.get_weights()
    losses = [float(art.train_step(x, y, learning_rate=0.1)[0]) for _ in range(5)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert any(not np.array_equal(a, b) for a, b in zip(before, art.get_weights()))


def test_example_file_with_sibling_imports(tmp_path):
    """examples/mnist_convnet.py defines build_model() and imports its sibling _common.py."""
    import onnx
    src = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples" / "mnist_convnet.py"
    assert main([str(src), "-o", str(tmp_path / "out"), "--emit", "onnx", "--name", "convnet"]) == 0
    model = onnx.load(str(tmp_path / "out" / "convnet.onnx"))
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == ["N", 28, 28, 1]


def test_train_step_as_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    src = tmp_path / "k.py"
    src.write_text(KERAS_PY)
    assert main([str(src), "-o", str(tmp_path / "o"), "--emit", "onnx", "--train", "--loss", "mse",
                 "--optimizer", "sgd"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["tiny.onnx", "tiny.train_step.onnx"]
    sess = ort.InferenceSession(str(tmp_path / "o" / "tiny.train_step.onnx"), providers=["CPUExecutionProvider"])
    feeds = {sess.get_inputs()[0].name: np.ones((2, 4), np.float32), "y": np.zeros((2, 3), np.float32),
             "__rng_counter": np.array(0, np.int64), "__learning_rate": np.array(0.1, np.float32),
             "__iterations": np.array(0, np.float32)}
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    assert outs["loss"].shape == () and any(name.startswith("update:") for name in outs)
