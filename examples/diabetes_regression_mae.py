"""Regression: scikit-learn's diabetes set, linear output, MSE loss with MAE reported (as the
book's house-price example does).

    python examples/diabetes_regression_mae.py [--epochs 100]
"""
import numpy as np
from sklearn.datasets import load_diabetes

import kcompile as kc
from kcompile import layers

from _common import example_args, standardized_split


def build_model(features=10):
    return kc.Sequential([
        kc.Input(shape=(features,)),
        layers.Dense(64, activation="relu"),
        layers.Dense(64, activation="relu"),
        layers.Dense(1),                          # a scalar regression needs no activation
    ])


def main():
    args = example_args(__doc__.split("\n")[0], epochs=100)
    data = load_diabetes()
    x_train, y_train, x_test, y_test = standardized_split(data.data, data.target.astype("float32"))
    x_train, y_train = x_train[:args.samples], y_train[:args.samples]

    model = build_model(x_train.shape[1])
    model.compile(optimizer="rmsprop", loss="mse", metrics=["mae"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=16, verbose=0)
    test_mse, test_mae = model.evaluate(x_test, y_test, verbose=0)
    baseline = float(np.abs(y_test - y_train.mean()).mean())   # always predicting the mean
    print(f"test_mae: {test_mae:.2f} (predicting the mean: {baseline:.2f})")


if __name__ == "__main__":
    main()
