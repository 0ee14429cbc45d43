"""Every front-end layer and activation, in small models, exported to ONNX and run by
onnxruntime (CPU) against the reference interpreter (max abs error 1e-5, batch 1, 3 and 8)."""
from __future__ import annotations

import numpy as np
import pytest

from kcompile.compiler.onnx_export import export_onnx
from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")
kc = pytest.importorskip("kcompile")
layers = kc.layers


def _randomize(model, seed=0):
    """Random weights (positive variances for batch norm), so zero biases and unit scales hide nothing."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        a = rng.normal(0, 0.5, v.shape)
        v.assign((np.abs(a) + 0.5 if "variance" in v.path else a).astype(v.numpy().dtype))
    return model


def _feeds(graph, batch, seed):
    rng = np.random.default_rng(seed)
    out = {}
    for v in graph.inputs:
        shape = v.type.concrete_shape(batch)
        if v.type.dtype.is_int:
            out[v.name] = rng.integers(0, 10, shape).astype(v.type.dtype.np)
        else:
            out[v.name] = rng.normal(0, 1, shape).astype(v.type.dtype.np)
    return out


def check_model(model, tmp_path):
    graph = model.forward_graph()
    path = export_onnx(graph, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3, 8):
        feeds = _feeds(graph, batch, batch)
        for got, want in zip(sess.run(None, feeds), run(graph, feeds)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def seq(input_shape, *stack, dtype="float32"):
    return kc.Sequential([kc.Input(shape=input_shape, dtype=dtype), *stack])


ACTIVATIONS = ["linear", "relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "gelu",
               "leaky_relu", "softplus", "silu", "swish", "exponential", "hard_sigmoid", "hard_silu"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name, tmp_path):
    x = kc.Input(shape=(6,))
    model = kc.Model(x, [layers.Dense(5, activation=name)(x), layers.Activation(name)(x)])
    check_model(_randomize(model), tmp_path)


def test_gelu_tanh_approximation(tmp_path):
    check_model(seq((6,), layers.Dense(5), layers.Activation(lambda x: kc.activations.gelu(x, approximate=True))),
                tmp_path)


LAYER_MODELS = {
    "dense-dropout-flatten": lambda: seq((3, 4), layers.Flatten(), layers.Dense(7, activation="relu"),
                                          layers.Dropout(0.5), layers.Dense(3, use_bias=False)),
    "reshape-rescaling": lambda: seq((12,), layers.Reshape((3, 4)), layers.Rescaling(1 / 255.0, offset=-1.0),
                                     layers.Dense(2)),
    "embedding": lambda: seq((5,), layers.Embedding(10, 4), layers.Flatten(), layers.Dense(3), dtype="int32"),
    "conv2d": lambda: seq((11, 12, 3), layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                          layers.Conv2D(5, (2, 3), dilation_rate=2), layers.Flatten(), layers.Dense(2)),
    "conv1d": lambda: seq((10, 3), layers.Conv1D(4, 3, padding="causal", dilation_rate=2),
                          layers.Conv1D(5, 4, strides=2, padding="same"), layers.Conv1D(2, 2)),
    "depthwise-separable": lambda: seq((8, 8, 3), layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                                       layers.SeparableConv2D(4, 3, strides=2, activation="relu")),
    "pool2d": lambda: seq((9, 9, 3), layers.MaxPooling2D(3, strides=2, padding="same"),
                          layers.AveragePooling2D(2, padding="same"), layers.AveragePooling2D(2)),
    "pool1d": lambda: seq((11, 3), layers.MaxPooling1D(2), layers.AveragePooling1D(3, strides=1, padding="same")),
    "global-pools-2d": lambda: _branches((6, 5, 3), layers.GlobalAveragePooling2D(), layers.GlobalMaxPooling2D()),
    "global-pools-1d": lambda: _branches((7, 3), layers.GlobalAveragePooling1D(), layers.GlobalMaxPooling1D()),
    "batchnorm": lambda: seq((5, 4), layers.BatchNormalization(), layers.Dense(3)),
    "batchnorm-conv": lambda: seq((6, 6, 3), layers.Conv2D(4, 3), layers.BatchNormalization(axis=-1)),
    "layernorm": lambda: seq((5, 4), layers.LayerNormalization(), layers.Dense(3)),
}


def _branches(shape, *pools):
    x = kc.Input(shape=shape)
    return kc.Model(x, [p(x) for p in pools])


@pytest.mark.parametrize("name", list(LAYER_MODELS))
def test_layer(name, tmp_path):
    check_model(_randomize(LAYER_MODELS[name]()), tmp_path)


@pytest.mark.parametrize("merge", ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"])
def test_merge_layers_two_inputs(merge, tmp_path):
    a, b = kc.Input(shape=(4,), name="left"), kc.Input(shape=(4,), name="right")
    h = getattr(layers, merge)()([layers.Dense(3)(a), layers.Dense(3)(b)])
    model = kc.Model([a, b], layers.Dense(2, activation="softmax")(h))
    check_model(_randomize(model), tmp_path)
