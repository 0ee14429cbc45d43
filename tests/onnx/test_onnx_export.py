"""Whole-graph export: names, symbolic batch, external data, atomic writes, clear refusals."""
from __future__ import annotations

import re
import shutil

import numpy as np
import onnx
import pytest

from kcompile.compiler import onnx_export
from kcompile.compiler.onnx_export import export_onnx, to_onnx_model
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")


def _mlp(hidden=16, features=8):
    rng = np.random.default_rng(0)
    b = GraphBuilder("mlp")
    x = b.input("pixels", TensorType(["N", features]))
    with b.location("dense"):
        h = b.relu(b.add(b.matmul(x, b.param("dense/kernel", rng.normal(size=(features, hidden)).astype(np.float32))),
                         b.param("dense/bias", rng.normal(size=hidden).astype(np.float32))))
    with b.location("head"):
        y = b.softmax(b.matmul(h, b.param("head/kernel", rng.normal(size=(hidden, 3)).astype(np.float32))))
    return b.build([y, h], ["probs", "hidden"])


def _check_runs(graph, path, batch=5):
    x = np.random.default_rng(batch).normal(size=(batch, graph.inputs[0].type.shape[1])).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {graph.inputs[0].name: x})
    for g, w in zip(got, run(graph, [x])):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_names_batch_symbol_and_initializers(tmp_path):
    g = _mlp()
    model = onnx.load(str(export_onnx(g, tmp_path / "mlp.onnx")))
    assert [i.name for i in model.graph.input] == ["pixels"]
    assert [o.name for o in model.graph.output] == ["probs", "hidden"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(inits["dense/kernel"], g.param_values["dense/kernel"])
    assert model.opset_import[0].version == onnx_export.DEFAULT_OPSET
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    _check_runs(g, tmp_path / "mlp.onnx")


def test_outputs_that_are_inputs_params_or_repeated(tmp_path):
    b = GraphBuilder("passthrough")
    x = b.input("x", TensorType(["N", 2]))
    p = b.param("p", np.ones((2,), np.float32))
    y = b.add(x, p)
    g = b.build([y, x, p, y], ["y", "x_copy", "p_copy", "y_again"])
    sess = ort.InferenceSession(str(export_onnx(g, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    xs = np.arange(6, dtype=np.float32).reshape(3, 2)
    for got, want in zip(sess.run(None, {"x": xs}), run(g, [xs])):
        np.testing.assert_array_equal(got, want)


def test_name_clash_is_refused(tmp_path):
    b = GraphBuilder("clash")
    x = b.input("x", TensorType(["N", 2]))
    g = b.build([b.neg(x)], ["x"])
    with pytest.raises(ValueError, match="the name 'x' is used twice"):
        export_onnx(g, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_external_data_with_relative_location(tmp_path):
    g = _mlp(hidden=300)
    path = export_onnx(g, tmp_path / "big.onnx", external_data_threshold=1000)
    model = onnx.load(str(path), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    assert len(locations) == 1 and re.fullmatch(r"big\.onnx\.[0-9a-f]{12}\.data", next(iter(locations)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["big.onnx", *locations])
    # the pair still works after moving the folder: nothing refers to the old absolute path
    moved = shutil.move(str(tmp_path), str(tmp_path.parent / (tmp_path.name + "_moved")))
    onnx.checker.check_model(f"{moved}/big.onnx", full_check=True)
    _check_runs(g, f"{moved}/big.onnx")


def test_small_models_stay_in_one_file(tmp_path):
    export_onnx(_mlp(), tmp_path / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = export_onnx(_mlp(), tmp_path / "m.onnx")
    before = path.read_bytes()

    def broken_save(model, f, **kw):
        with open(f, "wb") as out:
            out.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(onnx_export.onnx, "save_model", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_onnx(_mlp(hidden=4), path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert path.read_bytes() == before


def test_failed_check_leaves_nothing(tmp_path, monkeypatch):
    def reject(*a, **kw):
        raise onnx.checker.ValidationError("rejected")

    monkeypatch.setattr(onnx_export.onnx.checker, "check_model", reject)
    with pytest.raises(onnx.checker.ValidationError):
        export_onnx(_mlp(hidden=300), tmp_path / "m.onnx", external_data_threshold=0)
    assert list(tmp_path.iterdir()) == []


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(_mlp(), tmp_path / "missing" / "m.onnx")
    with pytest.raises(IsADirectoryError):
        export_onnx(_mlp(), tmp_path)


def test_in_memory_model_checks():
    model = to_onnx_model(_mlp())
    onnx.checker.check_model(model, full_check=True)
    assert model.producer_name == "kcompile"


def test_fixed_batch(tmp_path):
    g = _mlp()
    model = onnx.load(str(export_onnx(g, tmp_path / "m.onnx", batch=4)))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    _check_runs(g, tmp_path / "m.onnx", batch=4)
    with pytest.raises(ValueError, match="batch must be a positive int"):
        to_onnx_model(g, batch=0)


def test_large_constants_count_towards_external_data(tmp_path):
    b = GraphBuilder("consts")
    x = b.input("x", TensorType(["N", 512]))
    g = b.build([b.add(x, b.constant(np.linspace(0, 1, 512, dtype=np.float32)))], ["y"])
    path = export_onnx(g, tmp_path / "c.onnx", external_data_threshold=1000)
    assert sorted(p.name.split(".")[-1] for p in tmp_path.iterdir()) == ["data", "onnx"]
    _check_runs(g, path)


def test_a_new_export_never_pairs_the_old_model_with_new_data(tmp_path):
    """The new data file has its own name, so until the model's rename the old model reads its own
    data; afterwards the old data file is gone and the folder holds exactly one consistent pair."""
    path = tmp_path / "big.onnx"
    export_onnx(_mlp(hidden=300), path, external_data_threshold=1000)
    (old_data,) = [p for p in tmp_path.iterdir() if p.suffix == ".data"]
    legacy = tmp_path / "big.onnx.data"               # what earlier releases wrote
    legacy.write_bytes(b"old")
    g = _mlp(hidden=301)
    export_onnx(g, path, external_data_threshold=1000)
    (new_data,) = [p for p in tmp_path.iterdir() if p.suffix == ".data"]
    assert new_data != old_data and not legacy.exists()
    _check_runs(g, path)
    export_onnx(_mlp(), path)                        # inline weights now: no data file stays
    assert [p.name for p in tmp_path.iterdir()] == ["big.onnx"]
