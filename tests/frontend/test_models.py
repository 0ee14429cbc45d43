"""Models: Sequential (add, input_shape/input_dim, deferred build), functional multi-input/output,
subclassed models, feature extraction through layer.output, forward_graph naming, eager calls."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.ir import verify

from model_helpers import predict_ref, rand

TOL = dict(rtol=1e-5, atol=1e-5)


def _mlp_np(x, ws):
    k0, b0, k1, b1 = ws
    h = np.maximum(x @ k0 + b0, 0)
    z = h @ k1 + b1
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_sequential_variants_give_the_same_model():
    a = kc.Sequential([layers.Dense(6, activation="relu", input_shape=(4,)), layers.Dense(3, activation="softmax")])
    b = kc.Sequential()
    b.add(layers.Dense(6, activation="relu", input_dim=4))
    b.add(layers.Dense(3, activation="softmax"))
    c = kc.Sequential([kc.layers.Input(shape=(4,)), layers.Dense(6, activation="relu"),
                       layers.Dense(3, activation="softmax")])
    x = rand(5, 4)
    for m in (a, b, c):
        assert m.built and m.input_shape == (None, 4) and m.output_shape == (None, 3)
        assert len(m.layers) == 2 and [w.shape for w in m.get_weights()] == [(4, 6), (6,), (6, 3), (3,)]
        m.set_weights(a.get_weights())
        np.testing.assert_allclose(predict_ref(m, x), _mlp_np(x, a.get_weights()), **TOL)


def test_sequential_deferred_build_on_first_call():
    m = kc.Sequential([layers.Dense(3), layers.Dense(2)])
    assert not m.built
    with pytest.raises(ValueError, match="not been built"):
        m.forward_graph()
    x = rand(2, 5)
    y = m(x)
    assert m.built and y.shape == (2, 2) and m.input_shape == (None, 5)
    np.testing.assert_allclose(predict_ref(m, x), y.numpy(), **TOL)


def test_forward_graph_names_inputs_params_outputs():
    inp = kc.Input(shape=(4,), name="pixels")
    out = layers.Dense(2, name="logits")(layers.Dense(3, name="hidden")(inp))
    m = kc.Model(inp, out)
    g = verify(m.forward_graph())
    assert g.input_names() == ["pixels"]
    assert list(g.output_names) == ["logits"]
    assert g.param_names == ["hidden/kernel", "hidden/bias", "logits/kernel", "logits/bias"]
    np.testing.assert_array_equal(g.param_values["hidden/kernel"], m.get_layer("hidden").kernel.numpy())
    assert g.inputs[0].type.shape == ("N", 4)


def test_functional_multi_input_multi_output():
    a = kc.Input(shape=(4,), name="a")
    b = kc.Input(shape=(2,), name="b")
    h = layers.Dense(3, activation="tanh", name="ha")(a)
    merged = layers.Concatenate()([h, b])
    out1 = layers.Dense(2, name="out1")(merged)
    out2 = layers.Dense(1, activation="sigmoid", name="out2")(h)
    m = kc.Model(inputs=[a, b], outputs=[out1, out2])
    assert [l.name for l in m.layers][:2] == ["a", "b"] and m.output_names == ["out1", "out2"]
    xa, xb = rand(5, 4, seed=1), rand(5, 2, seed=2)
    y1, y2 = predict_ref(m, xa, xb)
    kh, bh = m.get_layer("ha").get_weights()
    k1, b1 = m.get_layer("out1").get_weights()
    k2, b2 = m.get_layer("out2").get_weights()
    hh = np.tanh(xa @ kh + bh)
    np.testing.assert_allclose(y1, np.concatenate([hh, xb], -1) @ k1 + b1, **TOL)
    np.testing.assert_allclose(y2, 1 / (1 + np.exp(-(hh @ k2 + b2))), **TOL)
    eager = m([xa, xb])
    np.testing.assert_allclose(eager[0].numpy(), y1, **TOL)
    by_name = m({"a": xa, "b": xb})
    np.testing.assert_allclose(by_name[1].numpy(), y2, **TOL)


def test_functional_with_ops_on_symbolic_tensors_and_shared_layer():
    x = kc.Input(shape=(3,))
    shared = layers.Dense(3, name="shared")
    y = shared(shared(x) * 2.0 + 1.0)
    m = kc.Model(x, kc.ops.relu(y))
    k, b = shared.get_weights()
    xv = rand(4, 3)
    np.testing.assert_allclose(predict_ref(m, xv), np.maximum(((xv @ k + b) * 2 + 1) @ k + b, 0), **TOL)
    assert len(m.weights) == 2


def test_feature_extraction_through_layer_output():
    base = kc.Sequential([layers.Dense(5, activation="relu", input_shape=(3,), name="f1"),
                          layers.Dense(4, activation="relu", name="f2"), layers.Dense(2, name="head")])
    features = kc.Model(inputs=base.inputs, outputs=[layer.output for layer in base.layers[:2]])
    x = rand(3, 3)
    h1, h2 = predict_ref(features, x)
    k1, b1, k2, b2, _, _ = base.get_weights()
    np.testing.assert_allclose(h1, np.maximum(x @ k1 + b1, 0), **TOL)
    np.testing.assert_allclose(h2, np.maximum(h1 @ k2 + b2, 0), **TOL)
    assert base.get_layer("f2").input is base.get_layer("f1").output


def test_nested_model_as_layer():
    inner = kc.Sequential([layers.Dense(3, activation="relu", input_shape=(4,))], name="inner")
    x = kc.Input(shape=(4,))
    outer = kc.Model(x, layers.Dense(1)(inner(x)))
    assert [w.shape for w in outer.weights] == [(4, 3), (3,), (3, 1), (1,)]
    xv = rand(2, 4)
    k, b, k2, b2 = outer.get_weights()
    np.testing.assert_allclose(predict_ref(outer, xv), np.maximum(xv @ k + b, 0) @ k2 + b2, **TOL)


class TwoHead(kc.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.body = layers.Dense(6, activation="relu")
        self.drop = layers.Dropout(0.5)
        self.head = layers.Dense(2)

    def call(self, inputs, training=False):
        return self.head(self.drop(self.body(inputs), training=training))


def test_subclassed_model_traced_like_functional():
    m = TwoHead(name="two_head")
    x = rand(3, 5)
    y = m(x)
    assert y.shape == (3, 2) and len(m.layers) == 3
    body, head = m.body.name, m.head.name
    assert [w.path for w in m.weights] == [f"two_head/{body}/kernel", f"two_head/{body}/bias",
                                           f"two_head/{head}/kernel", f"two_head/{head}/bias"]
    k, b, k2, b2 = m.get_weights()
    np.testing.assert_allclose(predict_ref(m, x), np.maximum(x @ k + b, 0) @ k2 + b2, **TOL)
    np.testing.assert_allclose(y.numpy(), predict_ref(m, x), **TOL)


def test_subclassed_model_build_and_unbuilt_error():
    m = TwoHead()
    with pytest.raises(ValueError, match="not been built"):
        m.forward_graph()
    m.build((None, 7))
    assert m.forward_graph().inputs[0].type.shape == ("N", 7)


def test_eager_ops_and_layer_calls_on_numpy():
    d = layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")
    out = d(np.ones((3, 4), np.float32))
    np.testing.assert_array_equal(out.numpy(), np.full((3, 2), 4.0))
    t = kc.ops.convert_to_tensor([[1.0, 2.0]])
    assert (t + 1).numpy().tolist() == [[2.0, 3.0]] and (2 * t).dtype == "float32"


def test_model_wrong_input_shape_is_a_clear_error():
    m = kc.Sequential([layers.Dense(2, input_shape=(4,))])
    with pytest.raises(ValueError, match=r"expects shape \(None, 4\), got \(3, 5\)"):
        m(np.zeros((3, 5), np.float32))


def test_variable_api():
    v = kc.Variable(np.zeros((2,)), name="v", trainable=False)
    v.assign([1, 2]).assign_add([1, 1]).assign_sub([0.5, 0.5])
    assert v.numpy().tolist() == [1.5, 2.5] and v.dtype == "float32" and not v.trainable
    assert v.path == "v" and v.shape == (2,)
    with pytest.raises(ValueError, match="shape"):
        v.assign([1, 2, 3])


class TicketModel(kc.Model):
    """The book's chapter-7 subclassed model: a dict of inputs, two outputs."""

    def __init__(self, num_departments):
        super().__init__()
        self.concat = layers.Concatenate()
        self.mixing = layers.Dense(8, activation="relu")
        self.priority = layers.Dense(1, activation="sigmoid")
        self.department = layers.Dense(num_departments, activation="softmax")

    def call(self, inputs):
        features = self.mixing(self.concat([inputs["title"], inputs["text_body"], inputs["tags"]]))
        return self.priority(features), self.department(features)


def test_subclassed_model_with_dict_inputs_and_two_outputs():
    m = TicketModel(num_departments=4)
    data = {"title": rand(3, 5, seed=1), "text_body": rand(3, 6, seed=2), "tags": rand(3, 2, seed=3)}
    p, d = m(data)
    assert p.shape == (3, 1) and d.shape == (3, 4)
    g = m.forward_graph()
    assert g.input_names() == ["title", "text_body", "tags"] and len(g.outputs) == 2
    gp, gd = predict_ref(m, data["title"], data["text_body"], data["tags"])
    np.testing.assert_allclose(gp, p.numpy(), **TOL)
    np.testing.assert_allclose(gd, d.numpy(), **TOL)


def test_export_onnx_matches_reference(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    inp = kc.Input(shape=(6,), name="features")
    m = kc.Model(inp, layers.Dense(3, activation="softmax")(layers.Dense(4, activation="relu")(inp)))
    m.export(tmp_path / "m.onnx", verbose=False)
    x = rand(5, 6)
    got = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"features": x})[0]
    np.testing.assert_allclose(got, predict_ref(m, x), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not supported"):
        m.export(tmp_path / "m.pb", format="tf_saved_model")


def test_subclassed_model_fits_on_a_dict_of_inputs():
    kc.config.set_backend("reference")
    try:
        m = TicketModel(num_departments=4)
        data = {"title": rand(32, 5, seed=1), "text_body": rand(32, 6, seed=2), "tags": rand(32, 2, seed=3)}
        m.compile(optimizer="adam", loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
        labels = [np.random.default_rng(0).random((32, 1)).astype("float32"), np.arange(32) % 4]
        history = m.fit(data, labels, epochs=1, batch_size=16, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert m.predict(data, verbose=0)[1].shape == (32, 4)
    finally:
        kc.config.set_backend(None)
