"""The functional API with two inputs: a digit's image and its row/column ink profile, merged.

    python examples/functional_two_inputs.py [--epochs 15]

After training, the model is exported to ONNX and onnxruntime must give the same predictions.
"""
import os
import tempfile

import numpy as np
from sklearn.datasets import load_digits

import kcompile as kc
from kcompile import layers

from _common import example_args


def build_model():
    image = kc.Input(shape=(8, 8, 1), name="image")
    profile = kc.Input(shape=(16,), name="profile")
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(image)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    p = layers.Dense(16, activation="relu")(profile)
    merged = layers.Concatenate()([x, p])                  # both branches meet here
    outputs = layers.Dense(10, activation="softmax")(merged)
    return kc.Model(inputs=[image, profile], outputs=outputs)


def features(images):
    """(image in [0, 1] with a channel axis, row and column sums of ink)."""
    x = (images / 16.0).astype("float32")
    return x[..., None], np.concatenate([x.sum(axis=2), x.sum(axis=1)], axis=1) / 8.0


def main():
    args = example_args(__doc__.split("\n")[0], epochs=15)
    digits = load_digits()
    images, profiles = features(digits.images)
    labels = digits.target
    n_train = args.samples or 1400
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit([images[:n_train], profiles[:n_train]], labels[:n_train], epochs=args.epochs, batch_size=32, verbose=0)
    _, acc = model.evaluate([images[1400:], profiles[1400:]], labels[1400:], verbose=0)
    print(f"test_acc: {acc:.4f}")

    # The same model through ONNX: inputs keep their names, the batch size stays free.
    ort = _onnxruntime()
    if ort is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "two_inputs.onnx")
            model.export(path, format="onnx")
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feeds = {"image": images[1400:], "profile": profiles[1400:]}
            onnx_probs = session.run(None, feeds)[0]
        ours = model.predict([images[1400:], profiles[1400:]], verbose=0)
        print(f"onnxruntime max abs difference: {np.abs(onnx_probs - ours).max():.2e}")


def _onnxruntime():
    try:
        import onnxruntime
        return onnxruntime
    except ImportError:
        print("onnxruntime is not installed: skipping the ONNX comparison")
        return None


if __name__ == "__main__":
    main()
