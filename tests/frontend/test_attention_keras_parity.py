"""MultiHeadAttention, Attention and AdditiveAttention against Keras 3 (jax backend) on the same weights:
get_weights layouts, predictions natively (1e-5), masks (both of Keras's masked-softmax paths), one
training step, and the exported ONNX model in onnxruntime."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("Keras parity tests need KERAS_BACKEND=jax", allow_module_level=True)

import kcompile as kc  # noqa: E402
from kcompile.compiler.onnx_export import export_onnx  # noqa: E402

from model_helpers import predict_ref  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
RNG = np.random.default_rng(3)


def _pair(build):
    ours, theirs = build(kc.layers, kc.Input, kc.Model), build(keras.layers, keras.Input, keras.Model)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    ws = [RNG.standard_normal(w.shape).astype(np.float32) * 0.5 for w in ours.get_weights()]
    ours.set_weights(ws)
    theirs.set_weights(ws)
    return ours, theirs


def _inputs(shapes):
    return [RNG.standard_normal(s).astype(np.float32) if dt == "float32" else (RNG.random(s) < 0.7)
            for s, dt in shapes]


def _check(build, shapes, tmp_path=None, atol=1e-5):
    """Predictions vs Keras; with tmp_path, natively and through ONNX too (else the reference interpreter,
    as native compiles cost seconds each on a busy machine)."""
    ours, theirs = _pair(build)
    xs = _inputs(shapes)
    want = theirs.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    got = ours.predict(xs if len(xs) > 1 else xs[0], verbose=0) if tmp_path else predict_ref(ours, *xs)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=atol)
    if tmp_path is not None:
        ort = pytest.importorskip("onnxruntime")
        path = export_onnx(ours.forward_graph(), tmp_path / "attention.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: x for i, x in zip(sess.get_inputs(), xs)}
        for g, o in zip(got if isinstance(got, list) else [got], sess.run(None, feeds)):
            np.testing.assert_allclose(o, g, rtol=0, atol=1e-5)
    return ours, theirs


def test_cross_attention_matches_keras_natively_and_in_onnx(tmp_path):
    def build(L, Input, Model):
        q, v = Input(shape=(5, 8)), Input(shape=(7, 6))
        return Model([q, v], L.MultiHeadAttention(num_heads=2, key_dim=3)(q, v))
    ours, _ = _check(build, [((3, 5, 8), "float32"), ((3, 7, 6), "float32")], tmp_path)
    assert [v.path for v in ours.weights][::2] == [f"{ours.layers[-1].name}/{n}/kernel"
                                                  for n in ("query", "key", "value", "attention_output")]


def test_self_attention_with_scores_value_dim_output_shape_and_key():
    def build(L, Input, Model):
        q, k = Input(shape=(6, 8)), Input(shape=(6, 5))
        out, scores = L.MultiHeadAttention(num_heads=3, key_dim=2, value_dim=4, output_shape=5)(
            q, q, k, return_attention_scores=True)
        return Model([q, k], [out, scores])
    _check(build, [((2, 6, 8), "float32"), ((2, 6, 5), "float32")])


SLOW = pytest.mark.slow   # more of the same paths: run with --runslow


@pytest.mark.parametrize("kind", [pytest.param("causal", marks=SLOW), "attention_mask", "causal_and_mask",
                                  pytest.param("no_bias", marks=SLOW)])
def test_masks_on_the_dot_product_path(kind, tmp_path):
    def build(L, Input, Model):
        x = Input(shape=(6, 8))
        mha = L.MultiHeadAttention(num_heads=2, key_dim=4, use_bias=kind != "no_bias")
        if kind in ("attention_mask", "causal_and_mask"):
            m = Input(shape=(6, 6), dtype="bool")
            return Model([x, m], mha(x, x, attention_mask=m, use_causal_mask=kind == "causal_and_mask"))
        return Model(x, mha(x, x, use_causal_mask=kind == "causal"))
    shapes = [((4, 6, 8), "float32")] + ([((4, 6, 6), "bool")] if "mask" in kind else [])
    _check(build, shapes, tmp_path if kind == "causal_and_mask" else None)


def test_wholly_masked_rows_follow_each_keras_path():
    """Rows whose mask is all False: uniform weights on the dot-product path, zeros on the Softmax path."""
    mask = np.ones((2, 5, 5), bool)
    mask[:, 1, :] = False
    for scores in (False, True):
        def build(L, Input, Model):
            x, m = Input(shape=(5, 4)), Input(shape=(5, 5), dtype="bool")
            out = L.MultiHeadAttention(num_heads=2, key_dim=2)(x, x, attention_mask=m, return_attention_scores=scores)
            return Model([x, m], list(out) if scores else out)
        ours, theirs = _pair(build)
        x = RNG.standard_normal((2, 5, 4)).astype(np.float32)
        for g, w in zip(predict_ref(ours, x, mask), theirs.predict([x, mask], verbose=0)):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


def test_attention_axes_on_a_rank4_input():
    def build(L, Input, Model):
        x = Input(shape=(3, 4, 6))
        return Model(x, L.MultiHeadAttention(num_heads=2, key_dim=3, attention_axes=(2,))(x, x))
    _check(build, [((2, 3, 4, 6), "float32")])


@pytest.mark.parametrize("kwargs", [pytest.param({}, marks=SLOW), {"use_scale": True},
                                    pytest.param({"score_mode": "concat"}, marks=SLOW),
                                    {"score_mode": "concat", "use_scale": True}])
def test_attention_layer(kwargs, tmp_path):
    def build(L, Input, Model):
        q, v, m = Input(shape=(4, 6)), Input(shape=(5, 6)), Input(shape=(5,), dtype="bool")
        out = L.Attention(**kwargs)([q, v], mask=[None, m], use_causal_mask=True)
        return Model([q, v, m], out)
    _check(build, [((3, 4, 6), "float32"), ((3, 5, 6), "float32"), ((3, 5), "bool")],
           tmp_path if kwargs.get("score_mode") == "concat" else None)


def test_additive_attention_with_key_and_scores():
    def build(L, Input, Model):
        q, v, k = Input(shape=(4, 6)), Input(shape=(5, 3)), Input(shape=(5, 6))
        out, scores = L.AdditiveAttention()([q, v, k], return_attention_scores=True)
        return Model([q, v, k], [out, scores])
    _check(build, [((2, 4, 6), "float32"), ((2, 5, 3), "float32"), ((2, 5, 6), "float32")])


def test_one_training_step_matches_keras():
    def build(L, Input, Model):
        x = Input(shape=(6, 8))
        y = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, use_causal_mask=True)
        return Model(x, L.Dense(1)(L.GlobalAveragePooling1D()(y)))
    ours, theirs = _pair(build)
    x, y = RNG.standard_normal((8, 6, 8)).astype(np.float32), RNG.standard_normal((8, 1)).astype(np.float32)
    for m, lib in ((ours, kc), (theirs, keras)):
        m.compile(lib.optimizers.SGD(learning_rate=0.1), "mse")
        m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, np.asarray(b), rtol=1e-4, atol=1e-5)


def test_config_round_trip_and_initial_weight_scale():
    mha = kc.layers.MultiHeadAttention(num_heads=4, key_dim=8, dropout=0.1, attention_axes=1, output_shape=(6,))
    clone = kc.layers.MultiHeadAttention.from_config(mha.get_config())
    assert clone.get_config() | {"name": None} == mha.get_config() | {"name": None}
    x = kc.Input(shape=(10, 32))
    mha(x, x)
    q = mha.query_dense.kernel.numpy()
    limit = np.sqrt(6 / (32 + 4 * 8))   # Keras's fans: (dim, heads * key_dim), not the last two axes
    assert q.shape == (32, 4, 8) and np.abs(q).max() <= limit and np.abs(q).max() > 0.8 * limit
