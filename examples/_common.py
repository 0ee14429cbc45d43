"""Shared by the examples: offline data (MNIST IDX files or scikit-learn digits) and the command line."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

MNIST_DIRS = [os.environ.get("KCOMPILE_MNIST_DIR", ""),
              Path(__file__).resolve().parents[2] / "shared/data/mnist"]  # ../shared/data/mnist from the repo


def load_mnist():
    """((train_images, train_labels), (test_images, test_labels)) as uint8 28x28 images, like Keras.

    Reads the IDX files with kc.datasets.mnist; falls back to scikit-learn's 8x8 digits, scaled up
    to 28x28 (each pixel 3x3, 2-pixel border) and brought to MNIST's 0..255 range, when they are
    not there.
    """
    import kcompile as kc
    from kcompile.frontend.datasets import MNIST_FILES

    for d in MNIST_DIRS:
        if d and all((Path(d) / f).exists() for f in MNIST_FILES.values()):
            return kc.datasets.mnist.load_data(str(d))
    return _digits_as_mnist()


def _digits_as_mnist():
    from sklearn.datasets import load_digits
    digits = load_digits()
    big = np.kron(digits.images, np.ones((3, 3)))                      # 8x8 -> 24x24
    images = np.pad(big, ((0, 0), (2, 2), (2, 2))) * (255.0 / 16.0)   # -> 28x28 in 0..255
    images, labels = images.astype(np.uint8), digits.target.astype(np.uint8)
    split = int(0.8 * len(images))
    return (images[:split], labels[:split]), (images[split:], labels[split:])


def standardized_split(x, y, test_fraction=0.2, seed=0):
    """Shuffle, split, and standardize features with the training statistics."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    n_test = int(len(x) * test_fraction)
    x_train, x_test, y_train, y_test = x[n_test:], x[:n_test], y[n_test:], y[:n_test]
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    return ((x_train - mean) / std).astype(np.float32), y_train, ((x_test - mean) / std).astype(np.float32), y_test


def example_args(description, epochs, samples=None):
    """--epochs, --samples, --backend and --seed; the defaults are the book's settings."""
    import argparse

    import kcompile as kc
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=int(os.environ.get("KCOMPILE_EXAMPLE_EPOCHS", epochs)))
    p.add_argument("--samples", type=int, default=samples,
                   help="use only this many training (and test) samples, for a quick run")
    p.add_argument("--backend", choices=["native", "reference"], default=os.environ.get("KCOMPILE_BACKEND"),
                   help="run graphs natively (the default) or with the NumPy reference")
    p.add_argument("--seed", type=int, help="seed the weight initializers and shuffling (kc.utils.set_random_seed)")
    args = p.parse_args()
    kc.config.set_backend(args.backend)
    if args.seed is not None:
        kc.utils.set_random_seed(args.seed)
    return args
