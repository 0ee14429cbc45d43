"""A whole training step (forward with dropout, loss, gradients through conv/pool/dense, Adam
update) exported to ONNX: onnxruntime reproduces the reference's loss and every updated tensor."""
from __future__ import annotations

import numpy as np
import pytest

from kcompile.cli.train import train_step_graph
from kcompile.compiler.onnx_export import export_onnx
from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")
kc = pytest.importorskip("kcompile")


def test_convnet_train_step_through_onnx(tmp_path):
    from kcompile import layers
    x = kc.Input(shape=(9, 9, 2))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    h = layers.MaxPooling2D(2, padding="same")(h)
    h = layers.Conv2D(3, 2, strides=2)(h)
    h = layers.AveragePooling2D(2, padding="same")(h)
    y = layers.Dense(3, activation="softmax")(layers.Dropout(0.3)(layers.Flatten()(h)))
    graph = train_step_graph(kc.Model(x, y), "adam", "sparse_categorical_crossentropy")
    ops = {n.op for n in graph.nodes}
    assert {"conv2d_filter_grad", "conv2d_input_grad", "max_pool2d_grad", "avg_pool2d_grad",
            "random_uniform_like"} <= ops
    sess = ort.InferenceSession(str(export_onnx(graph, tmp_path / "step.onnx")), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 8):
        rng = np.random.default_rng(batch)
        feeds = {graph.inputs[0].name: rng.normal(size=(batch, 9, 9, 2)).astype(np.float32),
                 "y": (np.arange(batch) % 3).astype(np.float32), "__rng_counter": np.array(batch, np.int64),
                 "__learning_rate": np.array(0.01, np.float32), "__iterations": np.array(0, np.float32)}
        for name, got, want in zip(graph.output_names, sess.run(None, feeds), run(graph, feeds)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=name)
