"""A small Transformer text classifier: token + position embedding, one encoder block
(MultiHeadAttention + residual + LayerNormalization + feed-forward), pooled, classified.

    python examples/transformer_text_classifier.py [--epochs 4] [--samples 2000]

The data is synthetic and offline: sequences of word ids where ids 1-9 read as positive words and
10-19 as negative ones; a sequence is positive when it holds more positive words. The layers are
Keras's text_classification_with_transformer example, written against a Keras-like module, so the
same code builds the model with Keras 3 (bench/bench_transformer.py compares the two). After
training, the model is exported to ONNX and onnxruntime must give the same predictions.
"""
import os
import tempfile

import numpy as np

import kcompile as kc

from _common import example_args

VOCAB, MAXLEN = 64, 32


def encoder_layers(lib):
    """(TokenAndPositionEmbedding, TransformerBlock) for a Keras-like module (kcompile or keras)."""
    layers, ops = lib.layers, lib.ops

    class TokenAndPositionEmbedding(layers.Layer):
        def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
            self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

        def call(self, x):
            positions = self.pos_emb(ops.arange(0, x.shape[-1], 1))   # one learned vector per position
            return self.token_emb(x) + positions

    class TransformerBlock(layers.Layer):
        def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn_hidden = layers.Dense(ff_dim, activation="relu")
            self.ffn_out = layers.Dense(embed_dim)
            self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
            self.dropout1 = layers.Dropout(rate)
            self.dropout2 = layers.Dropout(rate)

        def call(self, inputs, training=False):
            attn_output = self.dropout1(self.att(inputs, inputs), training=training)
            out1 = self.layernorm1(inputs + attn_output)                       # residual + norm
            ffn_output = self.dropout2(self.ffn_out(self.ffn_hidden(out1)), training=training)
            return self.layernorm2(out1 + ffn_output)

    return TokenAndPositionEmbedding, TransformerBlock


def build_model(lib=kc, maxlen=MAXLEN, vocab=VOCAB, embed_dim=32, num_heads=2, ff_dim=32, classes=2):
    embedding, block = encoder_layers(lib)
    layers = lib.layers
    inputs = lib.Input(shape=(maxlen,), dtype="int32")
    x = embedding(maxlen, vocab, embed_dim)(inputs)
    x = block(embed_dim, num_heads, ff_dim)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.1)(x)
    x = layers.Dense(20, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return lib.Model(inputs=inputs, outputs=outputs)


def synthetic_reviews(n, seed, maxlen=MAXLEN, vocab=VOCAB):
    """Word ids and labels: 1 when positive words (1-9) outnumber negative ones (10-19)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(20, vocab, (n, maxlen))
    for row in x:
        k = rng.integers(1, 8)
        slots = rng.choice(maxlen, k, replace=False)
        row[slots] = rng.integers(1, 20, k)
    pos, neg = ((x >= 1) & (x <= 9)).sum(1), ((x >= 10) & (x <= 19)).sum(1)
    keep = pos != neg
    return x[keep].astype("int32"), (pos > neg)[keep].astype("int32")


def main():
    args = example_args(__doc__.split("\n")[0], epochs=4)
    n = args.samples or 4000
    x_train, y_train = synthetic_reviews(n, seed=1)
    x_test, y_test = synthetic_reviews(max(n // 4, 200), seed=2)
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=0)
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test_acc: {acc:.4f}")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipping the ONNX comparison")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "transformer.onnx")
        model.export(path, format="onnx")
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        onnx_probs = session.run(None, {session.get_inputs()[0].name: x_test})[0]
    ours = model.predict(x_test, verbose=0)
    print(f"onnxruntime max abs difference: {np.abs(onnx_probs - ours).max():.2e}")


if __name__ == "__main__":
    main()
