"""Attention layers in training: dropout only while training, fit runs, and save/load keeps the model."""
import numpy as np

import kcompile as kc

from model_helpers import predict_ref


def _model():
    x = kc.Input(shape=(6, 8))
    h = kc.layers.MultiHeadAttention(2, 4, dropout=0.3, seed=1)(x, x, use_causal_mask=True)
    h = kc.layers.Attention(use_scale=True, dropout=0.2)([h, x])
    h = kc.layers.AdditiveAttention()([h, x])
    return kc.Model(x, kc.layers.Dense(1)(kc.layers.GlobalAveragePooling1D()(h)))


def test_dropout_only_in_training_and_fit_learns(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 6, 8)).astype("float32"), rng.standard_normal((32, 1)).astype("float32")
    model = _model()
    mha = model.layers[1]
    a = mha(x, x, training=True).numpy()
    assert not np.allclose(a, mha(x, x, training=True).numpy())        # a fresh mask per call
    np.testing.assert_allclose(mha(x, x).numpy(), mha(x, x, training=False).numpy())
    model.compile(kc.optimizers.Adam(0.01), "mse", backend="reference")
    hist = model.fit(x, y, batch_size=16, epochs=4, verbose=0).history["loss"]
    assert hist[-1] < hist[0]
    path = tmp_path / "attention.keras"
    model.save(path)
    loaded = kc.models.load_model(path)
    np.testing.assert_allclose(predict_ref(loaded, x), predict_ref(model, x), rtol=1e-6, atol=1e-6)
