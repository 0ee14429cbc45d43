"""Small models and data shared by the quantization tests (tiny, so every test stays fast)."""
import numpy as np

import kcompile as kc


def convnet(seed=0):
    kc.utils.set_random_seed(seed)
    return kc.Sequential([kc.Input((8, 8, 1)), kc.layers.Conv2D(4, 3, activation="relu", name="conv"), kc.layers.MaxPooling2D(name="pool"),
                          kc.layers.Flatten(name="flat"), kc.layers.Dense(16, activation="relu", name="hidden"),
                          kc.layers.Dense(10, activation="softmax", name="logits")])


def mlp(inputs=12, seed=0):
    kc.utils.set_random_seed(seed)
    return kc.Sequential([kc.Input((inputs,)), kc.layers.Dense(8, activation="relu", name="hidden"),
                          kc.layers.Dense(3, name="logits")])


def images(n=64, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype(np.float32)


def trained_digits_mlp(epochs=4):
    """A 64-32-10 MLP trained on the digits data: (model, (x_train, y_train), (x_test, y_test))."""
    (x, y), (xt, yt) = kc.datasets.digits.load_data()
    x, xt = x.astype(np.float32) / 16, xt.astype(np.float32) / 16
    kc.utils.set_random_seed(0)
    m = kc.Sequential([kc.Input((64,)), kc.layers.Dense(32, activation="relu", name="dense"),
                          kc.layers.Dense(10, name="dense_1")])
    m.compile(optimizer=kc.optimizers.Adam(0.01), loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    m.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return m, (x, y), (xt, yt)
