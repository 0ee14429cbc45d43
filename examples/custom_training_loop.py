"""Training by hand, as the book's chapters 3 and 7 do: kc.GradientTape, an optimizer's
apply_gradients, and metrics updated step by step; then kc.value_and_grad on a plain function.

    python examples/custom_training_loop.py [--epochs 3]
"""
import numpy as np
from sklearn.datasets import load_digits

import kcompile as kc
from kcompile import layers

from _common import example_args, standardized_split


def train(model, x_train, y_train, epochs, batch_size=32):
    loss_fn = kc.losses.SparseCategoricalCrossentropy()
    optimizer = kc.optimizers.RMSprop()
    accuracy = kc.metrics.SparseCategoricalAccuracy()
    mean_loss = kc.metrics.Mean()

    def train_step(inputs, targets):
        with kc.GradientTape() as tape:
            predictions = model(inputs, training=True)
            loss = loss_fn(targets, predictions)
        gradients = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        accuracy.update_state(targets, predictions)
        mean_loss.update_state(loss)

    for epoch in range(epochs):
        accuracy.reset_state()
        mean_loss.reset_state()
        for start in range(0, len(x_train), batch_size):
            train_step(x_train[start:start + batch_size], y_train[start:start + batch_size])
        print(f"epoch {epoch + 1}: loss {float(mean_loss.result()):.4f}, "
              f"accuracy {float(accuracy.result()):.4f}")


def linear_fit_with_grad():
    """kc.value_and_grad on a plain function: fit y = 3x - 1 by gradient descent."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 1)).astype("float32")
    y = 3 * x - 1

    def loss(w, b):
        return kc.ops.mean(kc.ops.square(kc.ops.matmul(x, w) + b - y))

    step = kc.value_and_grad(loss, argnums=(0, 1))
    w, b = np.zeros((1, 1), "float32"), np.zeros((1,), "float32")
    for _ in range(200):
        value, (dw, db) = step(w, b)
        w, b = w - 0.1 * np.asarray(dw), b - 0.1 * np.asarray(db)
    print(f"fitted w={float(w[0, 0]):.3f}, b={float(b[0]):.3f}, loss {float(np.asarray(value)):.5f}")


def main():
    args = example_args(__doc__.split("\n")[0], epochs=3)
    digits = load_digits()
    x_train, y_train, x_test, y_test = standardized_split(digits.data, digits.target)
    x_train, y_train = x_train[:args.samples], y_train[:args.samples]
    model = kc.Sequential([kc.Input(shape=(64,)), layers.Dense(64, activation="relu"),
                           layers.Dense(10, activation="softmax")])
    train(model, x_train, y_train, args.epochs)
    test_acc = float(np.mean(model.predict(x_test, verbose=0).argmax(axis=1) == y_test))
    print(f"test_acc: {test_acc:.4f}")
    linear_fit_with_grad()


if __name__ == "__main__":
    main()
