"""The book's first network (DLwP ch. 2): Dense(512, relu) + Dense(10, softmax), RMSprop, batch 128,
5 epochs on MNIST from the IDX files reaches >= 97.5% test accuracy. Runs natively (about 10 s of
training on 2 cores); the same run on the NumPy reference backend takes about 4 minutes, so that
one is marked slow."""
import os

import pytest

import kcompile as kc
from kcompile import layers

MNIST_DIR = os.environ.get("KCOMPILE_MNIST_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "mnist")


@pytest.mark.parametrize("backend", ["native", pytest.param("reference", marks=pytest.mark.slow)])
def test_book_mnist_mlp_reaches_97_5_percent(backend):
    if not os.path.isfile(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST IDX files not found in {MNIST_DIR}")
    (train_images, train_labels), (test_images, test_labels) = kc.datasets.mnist.load_data(MNIST_DIR)
    train_images = train_images.reshape((60000, 28 * 28)).astype("float32") / 255
    test_images = test_images.reshape((10000, 28 * 28)).astype("float32") / 255
    model = kc.Sequential([
        layers.Dense(512, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=backend)
    model.fit(train_images, train_labels, epochs=5, batch_size=128, verbose=0)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    print(f"test_acc: {test_acc}")
    assert test_acc >= 0.975
