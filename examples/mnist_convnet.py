"""The book's small convnet on MNIST (Deep Learning with Python, listing 8.x), functional API.

    python examples/mnist_convnet.py [--epochs 5] [--samples N]
"""
import kcompile as kc
from kcompile import layers

from _common import example_args, load_mnist


def build_model():
    inputs = kc.Input(shape=(28, 28, 1))
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu")(inputs)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return kc.Model(inputs=inputs, outputs=outputs)


def main():
    args = example_args(__doc__.split("\n")[0], epochs=5)
    (train_images, train_labels), (test_images, test_labels) = load_mnist()
    train_images, train_labels = train_images[:args.samples], train_labels[:args.samples]
    test_images, test_labels = test_images[:args.samples], test_labels[:args.samples]
    # Channels last, as Keras: (samples, 28, 28, 1), pixels in [0, 1]
    train_images = train_images.reshape((len(train_images), 28, 28, 1)).astype("float32") / 255
    test_images = test_images.reshape((len(test_images), 28, 28, 1)).astype("float32") / 255

    model = build_model()
    model.summary()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_images, train_labels, epochs=args.epochs, batch_size=64, verbose=2)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    print(f"test_acc: {test_acc:.4f}")


if __name__ == "__main__":
    main()
