"""A small image classifier trained natively with data augmentation inside the model (Keras 3's
"image classification from scratch" pattern) on scikit-learn's 8x8 digits, upscaled to 16x16.

The augmentation layers (random rotation, zoom, translation, contrast, Gaussian noise) run in the
compiled training step, drawing new transforms every step from the rng counter; at inference they
are the identity, so predict() sees the clean images.

    python examples/digits_augmented_convnet.py [--epochs 15] [--samples N] [--backend native]
"""
import numpy as np

import kcompile as kc
from kcompile import layers

from _common import example_args


def build_model():
    inputs = kc.Input(shape=(8, 8, 1))
    x = layers.Rescaling(1 / 16)(inputs)                       # digits are 0..16
    x = layers.Resizing(16, 16)(x)
    x = layers.RandomRotation(0.04, fill_mode="constant")(x)   # +-15 degrees
    x = layers.RandomZoom(0.1, fill_mode="constant")(x)
    x = layers.RandomTranslation(0.08, 0.08, fill_mode="constant")(x)
    x = layers.RandomContrast(0.2, value_range=(0, 1))(x)
    x = layers.GaussianNoise(0.05)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.GroupNormalization(4)(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.SpatialDropout2D(0.1)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.ActivityRegularization(l2=1e-4)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return kc.Model(inputs, outputs)


def main():
    args = example_args(__doc__.split("\n")[0], epochs=15)
    from sklearn.datasets import load_digits
    digits = load_digits()
    images, labels = digits.images.astype("float32")[..., None], digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]
    split = int(0.8 * len(images))
    train_x, train_y, test_x, test_y = images[:split], labels[:split], images[split:], labels[split:]
    if args.samples:
        train_x, train_y = train_x[:args.samples], train_y[:args.samples]

    model = build_model()
    model.summary()
    model.compile(optimizer=kc.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_x, train_y, epochs=args.epochs, batch_size=32, verbose=2)
    test_loss, test_acc = model.evaluate(test_x, test_y, verbose=0)
    print(f"test_acc: {test_acc:.4f}")


if __name__ == "__main__":
    main()
