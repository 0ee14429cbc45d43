"""TextVectorization: Keras 3's standardize -> split -> ngrams -> StringLookup pipeline, run in Python.

Text is handled as UTF-8 bytes, as TensorFlow's string ops do: "lower" lowercases ASCII letters only
(tf.strings.lower without an encoding), punctuation is Keras's DEFAULT_STRIP_REGEX, "whitespace" splits
on runs of ASCII whitespace, "character" on Unicode code points, and ngrams of every requested width are
joined by " " and listed width by width (tf.strings.ngrams). The vocabulary is a StringLookup's with
mask "" (index 0) and OOV "[UNK]".
"""
from __future__ import annotations

import re

import numpy as np

from .index_lookup import PythonPreprocessingLayer, StringLookup

STRIP_PUNCTUATION = re.compile(rb'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
SPLIT = ("whitespace", "character", None)


class TextVectorization(PythonPreprocessingLayer):
    """Keras 3's TextVectorization (output modes int, multi_hot, count, tf_idf); NumPy in and out."""

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace", ngrams=None,
                 output_mode="int", output_sequence_length=None, pad_to_max_tokens=False, vocabulary=None,
                 idf_weights=None, sparse=False, ragged=False, encoding="utf-8", name=None, **kwargs):
        for key in ("dtype", "trainable", "vocabulary_size"):
            kwargs.pop(key, None)
        super().__init__(name=name, **kwargs)
        where = f"layer '{self.name}' (TextVectorization)"
        if standardize not in STANDARDIZE and not callable(standardize):
            raise ValueError(f"{where}: standardize must be one of {STANDARDIZE} or a callable, got {standardize!r}")
        if split not in SPLIT and not callable(split):
            raise ValueError(f"{where}: split must be one of {SPLIT} or a callable, got {split!r}")
        if output_mode not in ("int", "multi_hot", "count", "tf_idf", "binary", "tf-idf"):
            raise ValueError(f"{where}: unknown output_mode {output_mode!r}")
        if ngrams is not None and not (isinstance(ngrams, int) and ngrams > 0 or isinstance(ngrams, (tuple, list))
                                       and all(isinstance(n, int) and n > 0 for n in ngrams)):
            raise ValueError(f"{where}: ngrams must be None, a positive int or a tuple of positive ints, got {ngrams!r}")
        if output_sequence_length is not None and output_mode != "int":
            raise ValueError(f"{where}: `output_sequence_length` must not be set if `output_mode` is not 'int'.")
        if ragged:
            raise ValueError(f"{where}: ragged outputs are not supported (kcompile tensors are dense)")
        self.standardize, self.split, self.encoding = standardize, split, encoding
        self.ngrams_arg = tuple(ngrams) if isinstance(ngrams, list) else ngrams
        self.ngrams = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else self.ngrams_arg
        self.output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        self.output_sequence_length, self.ragged = output_sequence_length, ragged
        self.lookup = StringLookup(max_tokens=max_tokens, vocabulary=vocabulary, idf_weights=idf_weights,
                                   pad_to_max_tokens=pad_to_max_tokens, mask_token="", output_mode=self.output_mode,
                                   sparse=sparse, encoding=encoding, name=f"{self.name}_lookup")

    # -- text -> token rows ----------------------------------------------------------------------
    def _standardize(self, text: bytes) -> bytes:
        if callable(self.standardize):
            out = self.standardize(text.decode(self.encoding))
            return out.encode(self.encoding) if isinstance(out, str) else bytes(out)
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.lower()                  # bytes.lower(): ASCII letters only, as tf.strings.lower
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = STRIP_PUNCTUATION.sub(b"", text)
        return text

    def _split(self, text: bytes) -> list:
        if self.split is None:
            return [text]
        if callable(self.split):
            return [t.encode(self.encoding) if isinstance(t, str) else t for t in self.split(text.decode(self.encoding))]
        if self.split == "whitespace":
            return text.split()                 # runs of ASCII whitespace, no empty tokens
        return [c.encode("utf-8") for c in text.decode("utf-8")]

    def _ngrams(self, tokens: list) -> list:
        if self.ngrams is None:
            return tokens
        return [b" ".join(tokens[i:i + n]) for n in self.ngrams for i in range(len(tokens) - n + 1)]

    def _rows(self, inputs) -> list:
        a = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs, dtype=object)
        if a.ndim == 2 and a.shape[-1] == 1:
            a = a[:, 0]
        if a.ndim != 1:
            raise ValueError(f"layer '{self.name}' (TextVectorization): the input rank must be 1 or the last "
                             f"dimension must be 1; received inputs of shape {a.shape}")
        texts = [t if isinstance(t, bytes) else str(t).encode(self.encoding) for t in a.tolist()]
        return [[t.decode(self.encoding) for t in self._ngrams(self._split(self._standardize(text)))]
                for text in texts]

    # -- Keras API ---------------------------------------------------------------------------------
    def adapt(self, data, batch_size=None, steps=None):
        batches = [data] if isinstance(data, (list, tuple, np.ndarray)) else data
        rows = []
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            rows += self._rows(batch[0] if isinstance(batch, tuple) else batch)
        self.lookup.adapt(_padded(rows))

    def call(self, inputs):
        rows = self._rows(inputs)
        if self.output_mode != "int":
            return self.lookup.encode_numpy(self.lookup.lookup_numpy(_padded(rows)))
        length = self.output_sequence_length or max((len(r) for r in rows), default=0)
        ids = np.zeros((len(rows), length), np.int64)
        for i, row in enumerate(rows):
            row = row[:length]
            if row:
                ids[i, :len(row)] = self.lookup.lookup_numpy(np.asarray(row, dtype=object))
        return ids

    def get_vocabulary(self, include_special_tokens=True):
        return self.lookup.get_vocabulary(include_special_tokens)

    def vocabulary_size(self):
        return self.lookup.vocabulary_size()

    def set_vocabulary(self, vocabulary, idf_weights=None):
        self.lookup.set_vocabulary(vocabulary, idf_weights)

    def get_config(self):
        if callable(self.standardize) or callable(self.split):
            raise ValueError(f"layer '{self.name}' (TextVectorization): a callable standardize/split is Python code "
                             "and has no saved form")
        lookup = self.lookup.get_config()
        return {"name": self.name, "max_tokens": self.lookup.max_tokens, "standardize": self.standardize,
                "split": self.split, "ngrams": list(self.ngrams_arg) if isinstance(self.ngrams_arg, tuple)
                else self.ngrams_arg, "output_mode": self.output_mode,
                "output_sequence_length": self.output_sequence_length, "pad_to_max_tokens": self.lookup.pad_to_max_tokens,
                "sparse": False, "ragged": False, "vocabulary": lookup["vocabulary"], "idf_weights": lookup["idf_weights"],
                "encoding": self.encoding, "vocabulary_size": lookup["vocabulary_size"]}


def _padded(rows: list) -> np.ndarray:
    """Token rows as one 2-D object array, short rows padded with the mask token "" (which is never counted)."""
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), "", dtype=object)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out
