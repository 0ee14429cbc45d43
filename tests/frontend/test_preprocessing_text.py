"""StringLookup, IntegerLookup and TextVectorization. Keras 3 runs these three only on TensorFlow, which the
test environment does not have, so the expected values are Keras 3's own documented examples (the
docstrings of keras/src/layers/preprocessing/{string,integer}_lookup.py and text_vectorization.py) and
hand-derived cases of its vocabulary rule, np.lexsort((tokens, counts))[::-1] (count high to low, ties by
token high to low)."""
import numpy as np
import pytest

import kcompile as kc

L = kc.layers
VOCAB = ["a", "b", "c", "d"]
DATA = [["a", "c", "d"], ["d", "z", "b"]]
DATA4 = [["a", "c", "d", "d"], ["d", "z", "b", "z"]]


def test_string_lookup_keras_docstring_examples():
    np.testing.assert_array_equal(L.StringLookup(vocabulary=VOCAB)(DATA), [[1, 3, 4], [4, 0, 2]])
    adapted = L.StringLookup()
    adapted.adapt(DATA)
    assert adapted.get_vocabulary() == ["[UNK]", "d", "z", "c", "b", "a"]
    np.testing.assert_array_equal(adapted(DATA), [[5, 3, 1], [1, 2, 4]])
    np.testing.assert_array_equal(L.StringLookup(vocabulary=VOCAB, output_mode="one_hot")(["a", "b", "c", "d", "z"]),
                                  np.eye(5)[[1, 2, 3, 4, 0]])
    np.testing.assert_array_equal(L.StringLookup(vocabulary=VOCAB, output_mode="multi_hot")(DATA4),
                                  [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    np.testing.assert_array_equal(L.StringLookup(vocabulary=VOCAB, output_mode="count")(DATA4),
                                  [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])
    tfidf = L.StringLookup(output_mode="tf_idf")
    tfidf.set_vocabulary(VOCAB, idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(tfidf(DATA4), [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    tfidf.set_vocabulary(["[UNK]"] + VOCAB, idf_weights=[0.9, 0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(tfidf(DATA4), [[0, 0.25, 0, 0.6, 0.8], [1.8, 0, 0.75, 0, 0.4]], rtol=1e-6)
    inverse = L.StringLookup(vocabulary=VOCAB, invert=True)
    np.testing.assert_array_equal(inverse(L.StringLookup(vocabulary=VOCAB)(DATA)), [["a", "c", "d"], ["d", "[UNK]", "b"]])


def test_string_lookup_ties_compare_utf8_bytes_and_mask_token():
    layer = L.StringLookup(mask_token="")
    layer.adapt([["é", "z", "Z", "", "z"]])       # UTF-8 b"\xc3\xa9" sorts above b"z" and b"Z"
    assert layer.get_vocabulary() == ["", "[UNK]", "z", "é", "Z"]
    np.testing.assert_array_equal(layer([["", "é", "q"]]), [[0, 3, 1]])
    with pytest.raises(ValueError, match="repeated term"):
        L.StringLookup(vocabulary=["a", "a"])
    with pytest.raises(ValueError, match="num_oov_indices=0"):
        L.StringLookup(vocabulary=VOCAB, num_oov_indices=0)(["q"])


def test_string_layers_refuse_symbolic_inputs():
    with pytest.raises(TypeError, match="runs in Python in front of the compiled model"):
        L.StringLookup(vocabulary=VOCAB)(kc.Input((3,)))


def test_integer_lookup_keras_docstring_examples():
    vocab, data = [12, 36, 1138, 42], np.array([[12, 1138, 42], [42, 1000, 36]])
    np.testing.assert_array_equal(L.IntegerLookup(vocabulary=vocab)(data).numpy(), [[1, 3, 4], [4, 0, 2]])
    adapted = L.IntegerLookup()
    adapted.adapt(data)
    assert adapted.get_vocabulary() == [-1, 42, 1138, 1000, 36, 12]
    np.testing.assert_array_equal(adapted(data).numpy(), [[5, 2, 1], [1, 3, 4]])
    np.testing.assert_array_equal(L.IntegerLookup(vocabulary=vocab, num_oov_indices=2)(data).numpy(),
                                  [[2, 4, 5], [5, 0, 3]])       # floormod(1000, 2) = 0
    np.testing.assert_array_equal(L.IntegerLookup(vocabulary=vocab, output_mode="multi_hot")(data).numpy(),
                                  [[0, 1, 0, 1, 1], [1, 0, 1, 0, 1]])
    data4 = np.array([[12, 1138, 42, 42], [42, 7, 36, 7]])
    np.testing.assert_array_equal(L.IntegerLookup(vocabulary=vocab, output_mode="count")(data4).numpy(),
                                  [[0, 1, 0, 1, 2], [2, 0, 1, 0, 1]])
    tfidf = L.IntegerLookup(output_mode="tf_idf", vocabulary=vocab, idf_weights=[0.25, 0.75, 0.6, 0.4])
    np.testing.assert_allclose(tfidf(data4).numpy(), [[0, 0.25, 0, 0.6, 0.8], [1.0, 0, 0.75, 0, 0.4]], rtol=1e-6)
    masked = L.IntegerLookup(vocabulary=vocab, mask_token=0)
    np.testing.assert_array_equal(masked(np.array([[12, 1138, 0], [0, 1000, 36]])).numpy(), [[2, 4, 0], [0, 1, 3]])
    inverse = L.IntegerLookup(vocabulary=vocab, invert=True)
    np.testing.assert_array_equal(inverse(np.array([[1, 3, 4], [4, 0, 2]])).numpy(), [[12, 1138, 42], [42, -1, 36]])


def test_integer_lookup_compiles_into_a_model_and_saves(tmp_path):
    lookup = L.IntegerLookup(num_oov_indices=2, mask_token=0)
    lookup.adapt(np.array([[5, 7, 7, 9], [9, 9, 11, 0]]))
    inp = kc.Input((4,), dtype="int32")
    model = kc.Model(inp, L.CategoryEncoding(lookup.vocabulary_size(), output_mode="count")(lookup(inp)))
    x = np.array([[5, 0, 12, 9], [11, 13, 9, 9]], np.int32)
    want = np.zeros((2, 7), np.float32)
    for row, ids in enumerate(lookup.lookup_numpy(x.astype(np.int64))):
        for i in ids:
            want[row, i] += 1
    np.testing.assert_array_equal(model.predict(x, verbose=0), want)       # the native graph
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(kc.models.load_model(tmp_path / "m.keras").predict(x, verbose=0), want)


def test_text_vectorization_int_mode_with_vocabulary_and_adapt():
    layer = L.TextVectorization(max_tokens=5000, output_mode="int", output_sequence_length=4,
                                vocabulary=["earth", "wind", "and", "fire"])
    np.testing.assert_array_equal(layer(["earth wind and fire", "Fire, WIND!! earth? air"]), [[2, 3, 4, 5], [5, 3, 2, 1]])
    adapted = L.TextVectorization(max_tokens=5000, output_sequence_length=4)
    adapted.adapt(["foo", "bar", "baz"])
    assert adapted.get_vocabulary() == ["", "[UNK]", "foo", "baz", "bar"]       # ties: high to low
    np.testing.assert_array_equal(adapted(["foo qux bar", "qux baz"]), [[2, 1, 4, 0], [1, 3, 0, 0]])
    longest = L.TextVectorization(vocabulary=["a"])
    assert longest(["a a a", "a"]).shape == (2, 3)           # without a length: the longest row


def test_text_vectorization_max_tokens_ngrams_character_and_modes():
    frequent = L.TextVectorization(max_tokens=4)
    frequent.adapt(np.array([["b a c a"], ["c a d"]]))       # a:3, c:2, then b and d tie (d first)
    assert frequent.get_vocabulary() == ["", "[UNK]", "a", "c"]
    grams = L.TextVectorization(ngrams=2, output_mode="multi_hot", standardize="lower")
    grams.adapt(["The cat", "the dog"])
    assert grams.get_vocabulary() == ["[UNK]", "the", "the dog", "the cat", "dog", "cat"]
    np.testing.assert_array_equal(grams(["dog the cat"]), [[1, 1, 0, 1, 1, 1]])
    chars = L.TextVectorization(split="character", standardize=None)
    chars.adapt(["héllo"])
    assert chars.get_vocabulary() == ["", "[UNK]", "l", "é", "o", "h"]
    tfidf = L.TextVectorization(output_mode="tf_idf", max_tokens=6, pad_to_max_tokens=True)
    tfidf.adapt(["a b b c", "a d", "a"])
    idf = np.log(1 + 3 / (1 + np.array([3, 1, 1, 1])))        # a, b, d, c: log(1 + docs / (1 + doc count))
    want = [[idf.mean(), idf[0], idf[1], idf[2], 0, 0], [0, 0, 2 * idf[1], 0, 0, 0]]
    np.testing.assert_allclose(tfidf(["a b d e", "b b"]), want, rtol=1e-6)
    with pytest.raises(ValueError, match="output_sequence_length"):
        L.TextVectorization(output_mode="count", output_sequence_length=3)


def test_text_vectorization_config_round_trip():
    layer = L.TextVectorization(max_tokens=10, ngrams=(1, 3), output_sequence_length=5)
    layer.adapt(["x y z", "y z"])
    clone = L.TextVectorization.from_config(layer.get_config())
    assert clone.get_vocabulary() == layer.get_vocabulary()
    np.testing.assert_array_equal(clone(["z y x"]), layer(["z y x"]))


def _farmhash():
    return pytest.importorskip("farmhash", reason="pyfarmhash (FarmHash Fingerprint64) is not installed")


def test_hashing_keras_docstring_examples():
    _farmhash()
    letters = [["A"], ["B"], ["C"], ["D"], ["E"]]
    np.testing.assert_array_equal(L.Hashing(num_bins=3)(letters), [[1], [0], [1], [1], [2]])
    np.testing.assert_array_equal(L.Hashing(num_bins=3, mask_value="")([["A"], ["B"], [""], ["C"], ["D"]]),
                                  [[1], [1], [0], [2], [2]])
    ints = L.Hashing(num_bins=3)(np.array([[65], [66]]))      # integers hash as their decimal text
    np.testing.assert_array_equal(ints, L.Hashing(num_bins=3)([["65"], ["66"]]))
    np.testing.assert_array_equal(L.Hashing(num_bins=3, output_mode="one_hot")(letters), np.eye(3)[[1, 0, 1, 1, 2]])
    with pytest.raises(ValueError, match="salt"):
        L.Hashing(num_bins=3, salt=133)


def test_string_lookup_hashes_oov_values_into_several_buckets():
    _farmhash()        # Keras's docstring: "m" and "z" land in OOV buckets 0 and 1
    np.testing.assert_array_equal(L.StringLookup(vocabulary=VOCAB, num_oov_indices=2)([["a", "c", "d"], ["m", "z", "b"]]),
                                  [[2, 4, 5], [0, 1, 3]])


def test_hashing_without_farmhash_refuses_clearly(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_farmhash(name, *args, **kwargs):
        if name == "farmhash":
            raise ImportError("no farmhash")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_farmhash)
    with pytest.raises(ImportError, match="pip install pyfarmhash"):
        L.Hashing(num_bins=3)([["A"]])
