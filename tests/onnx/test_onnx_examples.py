"""The example models (untrained) exported with model.export and run on onnxruntime vs the reference."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODULES = ["mnist_mlp", "mnist_convnet", "breast_cancer_binary", "diabetes_regression_mae",
           "functional_two_inputs", "custom_layer"]


@pytest.fixture(scope="module")
def examples_on_path():
    sys.path.insert(0, str(EXAMPLES))
    yield
    sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize("name", MODULES)
def test_example_model_exports(name, tmp_path, examples_on_path):
    model = importlib.import_module(name).build_model()
    path = tmp_path / f"{name}.onnx"
    model.export(str(path), format="onnx", verbose=False)
    graph = model.forward_graph()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == graph.input_names()
    for batch in (1, 3, 8):
        rng = np.random.default_rng(batch)
        feeds = {v.name: rng.random(v.type.concrete_shape(batch), dtype=np.float32) for v in graph.inputs}
        for got, want in zip(sess.run(None, feeds), run(graph, feeds)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
