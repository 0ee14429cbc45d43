"""The Transformer text classifier example: it trains and exports (ONNX within 1e-5), and its encoder
block and positional embedding give Keras 3's predictions on the same weights."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from test_examples import metric, run_example

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import transformer_text_classifier as ex  # noqa: E402

import kcompile as kc  # noqa: E402
from kcompile.runtime.reference import run  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside Keras/NumPy 2


def test_example_trains_and_exports():
    pytest.importorskip("onnxruntime")
    out = run_example("transformer_text_classifier.py", "--epochs", "2", "--samples", "1200")
    assert metric(out, "test_acc") > 0.8
    assert metric(out, "onnxruntime max abs difference") <= 1e-5


def test_position_embedding_depends_on_position():
    embedding, _ = ex.encoder_layers(kc)
    layer = embedding(maxlen=4, vocab_size=5, embed_dim=3)
    out = layer(np.array([[2, 2, 2, 2]], np.int32)).numpy()
    tok, pos = layer.token_emb.embeddings.numpy(), layer.pos_emb.embeddings.numpy()
    np.testing.assert_allclose(out[0], tok[2] + pos, rtol=1e-6)


def test_encoder_matches_keras_on_the_same_weights():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("needs KERAS_BACKEND=jax")
    ours = ex.build_model(kc, maxlen=12, vocab=30, embed_dim=8, num_heads=2, ff_dim=16)
    theirs = ex.build_model(keras, maxlen=12, vocab=30, embed_dim=8, num_heads=2, ff_dim=16)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(w.shape).astype(np.float32) * 0.3 for w in ours.get_weights()]
    ours.set_weights(ws)
    theirs.set_weights(ws)
    x = rng.integers(0, 30, (5, 12)).astype(np.int32)
    got = run(ours.forward_graph(), [x])[0]
    np.testing.assert_allclose(got, np.asarray(theirs.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
