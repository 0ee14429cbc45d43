"""Binary classification: scikit-learn's breast cancer set, sigmoid output, binary crossentropy.

    python examples/breast_cancer_binary.py [--epochs 20]
"""
from sklearn.datasets import load_breast_cancer

import kcompile as kc
from kcompile import layers

from _common import example_args, standardized_split


def build_model(features=30):
    return kc.Sequential([
        kc.Input(shape=(features,)),
        layers.Dense(16, activation="relu"),
        layers.Dense(16, activation="relu"),
        layers.Dense(1, activation="sigmoid"),   # probability of "benign"
    ])


def main():
    args = example_args(__doc__.split("\n")[0], epochs=20)
    data = load_breast_cancer()
    x_train, y_train, x_test, y_test = standardized_split(data.data, data.target.astype("float32"))
    x_train, y_train = x_train[:args.samples], y_train[:args.samples]

    model = build_model(x_train.shape[1])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.2, verbose=0)
    print(f"final val_accuracy: {history.history['val_accuracy'][-1]:.4f}")
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test_acc: {acc:.4f}")


if __name__ == "__main__":
    main()
