"""The book's chapter-7 model-building listings, with only the import changed (import kcompile as keras)."""
import numpy as np

import kcompile as keras
from kcompile import layers

from model_helpers import predict_ref

VOCAB, NUM_TAGS, NUM_DEPARTMENTS = 50, 6, 4


def _ticket_model():
    title = keras.Input(shape=(VOCAB,), name="title")
    text_body = keras.Input(shape=(VOCAB,), name="text_body")
    tags = keras.Input(shape=(NUM_TAGS,), name="tags")
    features = layers.Concatenate()([title, text_body, tags])
    features = layers.Dense(64, activation="relu")(features)
    priority = layers.Dense(1, activation="sigmoid", name="priority")(features)
    department = layers.Dense(NUM_DEPARTMENTS, activation="softmax", name="department")(features)
    return keras.Model(inputs=[title, text_body, tags], outputs=[priority, department])


def test_sequential_build_then_weights_and_summary():
    model = keras.Sequential(name="my_example_model")
    model.add(layers.Dense(64, activation="relu", name="my_first_layer"))
    model.add(layers.Dense(10, activation="softmax", name="my_last_layer"))
    model.build(input_shape=(None, 3))
    assert [w.shape for w in model.weights] == [(3, 64), (64,), (64, 10), (10,)]
    lines = []
    model.summary(print_fn=lines.append)
    assert 'Model: "my_example_model"' in lines[0] and "Total params: 906" in "\n".join(lines)


def test_multi_input_multi_output_and_feature_reuse():
    model = _ticket_model()
    assert [type(l).__name__ for l in model.layers] == ["InputLayer"] * 3 + ["Concatenate", "Dense", "Dense", "Dense"]
    assert len(model.layers[3].input) == 3 and model.layers[3].output.shape == (None, 2 * VOCAB + NUM_TAGS)
    features = model.layers[4].output
    difficulty = layers.Dense(3, activation="softmax", name="difficulty")(features)
    new_model = keras.Model(inputs=model.inputs, outputs=[*model.outputs, difficulty])
    rng = np.random.default_rng(0)
    data = [rng.integers(0, 2, (4, VOCAB)).astype("float32"), rng.integers(0, 2, (4, VOCAB)).astype("float32"),
            rng.integers(0, 2, (4, NUM_TAGS)).astype("float32")]
    p, d, diff = predict_ref(new_model, *data)
    p0, d0 = predict_ref(model, *data)
    np.testing.assert_array_equal(p, p0)
    np.testing.assert_array_equal(d, d0)
    assert diff.shape == (4, 3) and np.allclose(diff.sum(-1), 1, atol=1e-6)
    assert new_model.output_names == ["priority", "department", "difficulty"]


class Classifier(keras.Model):
    def __init__(self, num_classes=2):
        super().__init__()
        if num_classes == 2:
            num_units, activation = 1, "sigmoid"
        else:
            num_units, activation = num_classes, "softmax"
        self.dense = layers.Dense(num_units, activation=activation)

    def call(self, inputs):
        return self.dense(inputs)


def test_subclassed_model_inside_functional_and_functional_inside_subclassed():
    inputs = keras.Input(shape=(3,))
    features = layers.Dense(64, activation="relu")(inputs)
    model = keras.Model(inputs=inputs, outputs=Classifier(num_classes=10)(features))
    assert model.count_params() == 4 * 64 + 65 * 10
    x = np.random.default_rng(1).standard_normal((2, 3)).astype("float32")
    np.testing.assert_allclose(predict_ref(model, x), model(x).numpy(), rtol=1e-5, atol=1e-6)

    inner_in = keras.Input(shape=(64,))
    binary_classifier = keras.Model(inputs=inner_in, outputs=layers.Dense(1, activation="sigmoid")(inner_in))

    class MyModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(64, activation="relu")
            self.classifier = binary_classifier

        def call(self, inputs):
            return self.classifier(self.dense(inputs))

    outer = MyModel()
    y = outer(np.ones((2, 5), "float32"))
    assert y.shape == (2, 1) and outer.count_params() == 6 * 64 + 65
    np.testing.assert_allclose(predict_ref(outer, np.ones((2, 5), "float32")), y.numpy(), rtol=1e-5)


class SimpleDense(keras.layers.Layer):
    """DLwP ch. 3, as written: two add_weight calls without name= (Keras 3 names them variable,
    variable_1; the paths, which are graph parameter names, must stay unique)."""

    def __init__(self, units, activation=None):
        super().__init__()
        self.units = units
        self.activation = activation

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.W = self.add_weight(shape=(input_dim, self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        y = keras.ops.matmul(inputs, self.W) + self.b
        return self.activation(y) if self.activation is not None else y


def test_chapter3_simple_dense_unnamed_weights_get_unique_paths_and_train():
    # no relu here: with unseeded weights all units could start dead and the bias would never move
    model = keras.Sequential([keras.Input(shape=(4,)), SimpleDense(3)])
    name = model.layers[0].name          # simple_dense, or simple_dense_N after other tests in this process
    assert name.startswith("simple_dense")
    assert [w.path for w in model.weights] == [f"{name}/variable", f"{name}/variable_1"]
    model.compile(optimizer="sgd", loss="mse", backend="reference")
    before = model.get_weights()
    model.fit(np.ones((8, 4), "float32"), np.full((8, 3), 2.0, "float32"), verbose=0)
    after = model.get_weights()
    assert not np.array_equal(before[1], after[1])  # the bias moved: gradients reached both weights


def test_chapter3_simple_dense_called_eagerly():
    my_dense = SimpleDense(units=32, activation=keras.ops.relu)
    output_tensor = my_dense(keras.ops.ones(shape=(2, 784)))
    assert output_tensor.shape == (2, 32) and len(my_dense.weights) == 2
