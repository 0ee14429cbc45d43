"""The book's first network: a 2-layer MLP on MNIST (Deep Learning with Python, listing 2.x).

    python examples/mnist_mlp.py [--epochs 5] [--samples N]

Only the import differs from the Keras listing. Uses ../shared/data/mnist when present,
scikit-learn's digits otherwise.
"""
import kcompile as kc
from kcompile import layers

from _common import example_args, load_mnist


def build_model():
    # The book leaves the input shape to the first fit() (that works here too); naming it lets
    # `kcompile examples/mnist_mlp.py -o out` compile the model before any training.
    return kc.Sequential([
        kc.Input(shape=(28 * 28,)),
        layers.Dense(512, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def main():
    args = example_args(__doc__.split("\n")[0], epochs=5)
    (train_images, train_labels), (test_images, test_labels) = load_mnist()
    train_images, train_labels = train_images[:args.samples], train_labels[:args.samples]
    test_images, test_labels = test_images[:args.samples], test_labels[:args.samples]

    model = build_model()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    # Flatten the 28x28 images and scale the pixels to [0, 1]
    train_images = train_images.reshape((len(train_images), 28 * 28)).astype("float32") / 255
    test_images = test_images.reshape((len(test_images), 28 * 28)).astype("float32") / 255

    model.fit(train_images, train_labels, epochs=args.epochs, batch_size=128, verbose=2)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    print(f"test_acc: {test_acc:.4f}")

    predictions = model.predict(test_images[:10], verbose=0)
    print("first predictions:", predictions.argmax(axis=1), "labels:", test_labels[:10])


if __name__ == "__main__":
    main()
