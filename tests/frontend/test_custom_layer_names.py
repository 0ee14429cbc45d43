"""The book's SimpleDense (DLwP ch. 3) calls add_weight twice without name=: Keras 3 accepts that,
auto-naming variable, variable_1, ...; the paths (graph parameter names) must stay unique."""
import numpy as np

import kcompile as kc


class SimpleDense(kc.layers.Layer):
    def __init__(self, units, activation=None):
        super().__init__()
        self.units = units
        self.activation = activation

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.W = self.add_weight(shape=(input_dim, self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        y = kc.ops.matmul(inputs, self.W) + self.b
        if self.activation is not None:
            y = self.activation(y)
        return y


def test_unnamed_weights_get_unique_paths_and_train():
    model = kc.Sequential([kc.Input(shape=(4,)), SimpleDense(3, activation=kc.activations.relu)])
    assert [w.path for w in model.weights] == ["simple_dense/variable", "simple_dense/variable_1"]
    model.compile(optimizer="sgd", loss="mse", backend="reference")
    before = model.get_weights()
    model.fit(np.ones((8, 4), "float32"), np.full((8, 3), 2.0, "float32"), verbose=0)
    after = model.get_weights()
    assert all(a.shape == b.shape for a, b in zip(before, after))
    assert not np.array_equal(before[1], after[1])  # the bias moved: gradients reached both weights
