"""Bad input to the attention layers: clear errors naming the layer, the expected and the actual shape."""
import numpy as np
import pytest

import kcompile as kc

L = kc.layers


def test_mha_value_and_key_must_agree_off_the_last_axis():
    q, v, k = kc.Input(shape=(5, 8)), kc.Input(shape=(7, 8)), kc.Input(shape=(6, 8))
    with pytest.raises(ValueError, match=r"layer 'mha_vk' \(MultiHeadAttention\).*value and key.*\(None, 7, 8\).*"
                                         r"\(None, 6, 8\)"):
        L.MultiHeadAttention(2, 4, name="mha_vk")(q, v, k)


def test_mha_query_and_value_ranks_and_batch_axes():
    with pytest.raises(ValueError, match="layer 'mha_rank'.*same rank"):
        L.MultiHeadAttention(2, 4, name="mha_rank")(kc.Input(shape=(5, 8)), kc.Input(shape=(2, 7, 8)))
    with pytest.raises(ValueError, match="layer 'mha_axes'.*must agree on every axis except the attention axes"):
        L.MultiHeadAttention(2, 4, attention_axes=2, name="mha_axes")(kc.Input(shape=(3, 5, 8)),
                                                                      kc.Input(shape=(4, 5, 8)))


def test_mha_called_again_with_a_different_feature_size():
    mha = L.MultiHeadAttention(2, 4, name="mha_dims")
    mha(kc.Input(shape=(5, 8)), kc.Input(shape=(7, 6)))
    with pytest.raises(ValueError, match=r"layer 'mha_dims'.*value must have shape \(None, 7, 6\).*\(None, 7, 5\)"):
        mha(kc.Input(shape=(5, 8)), kc.Input(shape=(7, 5)))


@pytest.mark.parametrize("arg,shape,expected", [("attention_mask", (5, 6), r"\(None, 5, 7\)"),
                                                ("value_mask", (5,), r"\(None, 7\)"),
                                                ("query_mask", (7,), r"\(None, 5\)")])
def test_mha_masks_of_the_wrong_shape(arg, shape, expected):
    q, v, m = kc.Input(shape=(5, 8)), kc.Input(shape=(7, 8)), kc.Input(shape=shape, dtype="bool")
    with pytest.raises(ValueError, match=rf"layer 'mha_{arg}' \(MultiHeadAttention\): {arg} must have shape "
                                         rf"{expected}.*got shape \(None, {', '.join(map(str, shape))}\)"):
        L.MultiHeadAttention(2, 4, name=f"mha_{arg}")(q, v, **{arg: m})


@pytest.mark.parametrize("kwargs,match", [({"num_heads": 0, "key_dim": 4}, "num_heads must be a positive integer"),
                                          ({"num_heads": 2, "key_dim": 2.5}, "key_dim must be a positive integer"),
                                          ({"num_heads": 2, "key_dim": 4, "dropout": 1.5}, r"dropout must be in"),
                                          ({"num_heads": 2, "key_dim": 4, "attention_axes": "x"}, "attention_axes")])
def test_mha_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        L.MultiHeadAttention(**kwargs)


def test_attention_layer_errors():
    q, v = kc.Input(shape=(4, 6)), kc.Input(shape=(5, 3))
    with pytest.raises(ValueError, match=r"layer 'att_dims' \(Attention\): query and key must have the same last "
                                         r"dimension, got query shape \(None, 4, 6\) and key shape \(None, 5, 3\)"):
        L.Attention(name="att_dims")([q, v])
    with pytest.raises(ValueError, match="layer 'att_list'.*must be called on a list"):
        L.Attention(name="att_list")(q)
    k = kc.Input(shape=(6, 6))
    with pytest.raises(ValueError, match="layer 'add_len' \\(AdditiveAttention\\): key and value must have the same "
                                         "length"):
        L.AdditiveAttention(name="add_len")([q, v, k])
    m = kc.Input(shape=(4,), dtype="bool")
    with pytest.raises(ValueError, match=r"layer 'att_mask' \(Attention\): value mask must have shape \(None, 5\)"):
        L.Attention(name="att_mask")([q, kc.Input(shape=(5, 6))], mask=[None, m])
    with pytest.raises(ValueError, match="score_mode must be 'dot' or 'concat'"):
        L.Attention(score_mode="general")


def test_eager_calls_work_and_check_too():
    rng = np.random.default_rng(0)
    mha = L.MultiHeadAttention(2, 3)
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    assert mha(x, x).shape == (2, 4, 5)
    out, scores = mha(x, x, return_attention_scores=True, use_causal_mask=True)
    assert scores.shape == (2, 2, 4, 4) and np.allclose(np.triu(scores.numpy()[0, 0], 1), 0)
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        mha(x, x, attention_mask=np.ones((2, 4, 3), bool))


def test_compute_output_shape():
    assert L.MultiHeadAttention(2, 4).compute_output_shape((None, 5, 8), (None, 7, 6)) == (None, 5, 8)
    assert L.MultiHeadAttention(2, 4, output_shape=3).compute_output_shape((None, 5, 8), (None, 7, 6)) == (None, 5, 3)
    assert L.Attention().compute_output_shape([(None, 4, 6), (None, 5, 3), (None, 5, 6)]) == (None, 4, 3)
    with pytest.raises(ValueError, match="value and key"):
        L.MultiHeadAttention(2, 4).compute_output_shape((None, 5, 8), (None, 7, 6), (None, 6, 6))
