"""A custom layer, as the book writes one: subclass Layer, make weights in build(), compute in call().

    python examples/custom_layer.py [--epochs 20]
"""
from sklearn.datasets import load_digits

import kcompile as kc
from kcompile import layers, ops

from _common import example_args, standardized_split


class SimpleDense(layers.Layer):
    """Dense, written from scratch: y = activation(x @ W + b)."""

    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = kc.activations.get(activation)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        # Weights are created on the first call, once the input shape is known (as in Keras).
        # (kcompile needs the names: two unnamed weights of one layer would share a path.)
        self.W = self.add_weight(shape=(input_dim, self.units), initializer="random_normal", name="kernel")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, self.W) + self.b)


def build_model():
    return kc.Sequential([
        kc.Input(shape=(64,)),
        SimpleDense(32, activation="relu"),
        SimpleDense(10, activation="softmax"),
    ])


def main():
    args = example_args(__doc__.split("\n")[0], epochs=20)
    digits = load_digits()
    x_train, y_train, x_test, y_test = standardized_split(digits.data, digits.target)
    x_train, y_train = x_train[:args.samples], y_train[:args.samples]

    model = build_model()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"weights: {[tuple(w.shape) for w in model.get_weights()]}")
    print(f"test_acc: {acc:.4f}")


if __name__ == "__main__":
    main()
