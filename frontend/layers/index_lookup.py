"""StringLookup and IntegerLookup: Keras 3's IndexLookup vocabulary, adapt and output modes.

The vocabulary is [mask (int mode only)] + [oov_token] * num_oov_indices + tokens; adapt() orders the
tokens as Keras's np.lexsort((tokens, counts))[::-1] does: by count, high to low, ties by the token's own
order, high to low (strings compare as UTF-8 bytes). StringLookup runs in Python in front of the compiled
graph (kcompile tensors hold no strings); IntegerLookup compiles into the graph (a comparison against
the vocabulary constants), with the same NumPy path for eager checks.
"""
from __future__ import annotations

import collections

import numpy as np

from .. import ops
from .base import Layer
from .preprocessing_numeric import encode_categorical

MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


class IndexLookup(Layer):
    """The shared vocabulary logic; subclasses define how values are keyed and how calls run."""

    def __init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary=None, idf_weights=None,
                 invert=False, output_mode="int", sparse=False, pad_to_max_tokens=False, oov_method="floormod",
                 vocabulary_size=None, salt=None, **kwargs):
        for key in ("has_input_vocabulary", "dtype", "trainable"):   # Keras's lookups set their own dtypes
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        where = f"layer '{self.name}' ({type(self).__name__})"
        if max_tokens is not None and max_tokens <= 1:
            raise ValueError(f"{where}: if set, `max_tokens` must be greater than 1. Received: max_tokens={max_tokens}")
        if pad_to_max_tokens and max_tokens is None:
            raise ValueError(f"{where}: if pad_to_max_tokens is True, must set `max_tokens`.")
        if num_oov_indices < 0:
            raise ValueError(f"{where}: `num_oov_indices` must be greater than or equal to 0. "
                             f"Received: num_oov_indices={num_oov_indices}")
        if output_mode not in MODES:
            raise ValueError(f"{where}: unknown output_mode {output_mode!r}; expected one of {MODES}")
        if invert and output_mode != "int":
            raise ValueError(f"{where}: `output_mode` must be `'int'` when `invert` is true.")
        if sparse:
            raise ValueError(f"{where}: sparse outputs are not supported")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ValueError(f"{where}: `idf_weights` should only be set if `output_mode` is `'tf_idf'`.")
        if oov_method != "floormod" or salt is not None:
            raise ValueError(f"{where}: oov_method={oov_method!r} / salt (farmhash OOV buckets) are not supported")
        if isinstance(vocabulary, str):
            raise ValueError(f"{where}: a vocabulary file path is not read (pass the list of terms)")
        self.max_tokens, self.num_oov_indices, self.mask_token, self.oov_token = (
            max_tokens, int(num_oov_indices), mask_token, oov_token)
        self.invert, self.output_mode, self.sparse, self.pad_to_max_tokens = invert, output_mode, sparse, pad_to_max_tokens
        self.oov_method, self.salt = oov_method, salt
        self._tokens: list | None = None
        self._idf: np.ndarray | None = None
        self._has_input_vocabulary = vocabulary is not None
        if output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ValueError(f"{where}: when specifying the `vocabulary` argument in TF-IDF output mode, the "
                             "`idf_weights` argument must also be provided.")
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    # -- keys: how values compare and order (strings by UTF-8 bytes) ---------------------------
    def _key(self, value):
        return value

    def _order_key(self, token):
        return token

    # -- vocabulary ------------------------------------------------------------------------------
    def _oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    def _token_start(self) -> int:
        return self._oov_start() + self.num_oov_indices

    def _specials(self) -> list:
        return [self.mask_token] * self._oov_start() + [self.oov_token] * self.num_oov_indices

    def set_vocabulary(self, vocabulary, idf_weights=None):
        where = f"layer '{self.name}' ({type(self).__name__})"
        vocab = [self._key(v) for v in np.asarray(vocabulary).reshape(-1).tolist()]
        if not vocab:
            raise ValueError(f"{where}: cannot set an empty vocabulary")
        specials = self._specials()
        has_specials = vocab[:len(specials)] == specials
        tokens = vocab[len(specials):] if has_specials else vocab
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        if repeated:
            raise ValueError(f"{where}: the passed vocabulary has at least one repeated term: {repeated}")
        if self.mask_token is not None and self.mask_token in tokens:
            raise ValueError(f"{where}: found reserved mask token {self.mask_token!r} at an unexpected location in "
                             f"`vocabulary`; include special tokens only at the start, in this order: {specials}")
        if self.max_tokens is not None and len(specials) + len(tokens) > self.max_tokens:
            raise ValueError(f"{where}: attempted to set a vocabulary larger than the maximum vocab size "
                             f"({len(specials) + len(tokens)} > max_tokens={self.max_tokens})")
        self._tokens = tokens
        self._has_input_vocabulary = True
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError(f"{where}: `idf_weights` must be set if output_mode is 'tf_idf'.")
            idf = np.asarray(idf_weights, np.float32).reshape(-1)
            if len(idf) != len(vocab):
                raise ValueError(f"{where}: `idf_weights` must be the same length as vocabulary "
                                 f"({len(idf)} != {len(vocab)})")
            front = [] if has_specials else [float(np.average(idf))] * self._token_start()
            self._set_idf(np.concatenate([np.asarray(front, np.float32), idf]))
        elif idf_weights is not None:
            raise ValueError(f"{where}: `idf_weights` should only be set if output_mode is 'tf_idf'.")

    def _set_idf(self, idf):
        if self.pad_to_max_tokens and self.max_tokens is not None:
            idf = np.pad(idf, (0, self.max_tokens - len(idf)))
        self._idf = idf.astype(np.float32)

    def adapt(self, data, steps=None):
        """Count tokens (and, for tf_idf, documents) and keep the most frequent, ordered as Keras orders them."""
        if self._has_input_vocabulary:
            raise ValueError(f"Cannot adapt layer '{self.name}' after setting a static vocabulary via "
                             "`vocabulary` argument or `set_vocabulary()` method.")
        counts, doc_counts, docs = collections.Counter(), collections.Counter(), 0
        for i, rows in enumerate(self._adapt_batches(data)):
            if steps is not None and i >= steps:
                break
            for row in rows:
                row = [self._key(t) for t in row]
                counts.update(row)
                doc_counts.update(set(row))
                docs += 1
        for special in (self.mask_token, self.oov_token):
            counts.pop(special, None)
        ranked = sorted(counts, key=lambda t: (counts[t], self._order_key(t)), reverse=True)
        if self.max_tokens:
            ranked = ranked[:self.max_tokens - self._token_start()]
        self._tokens = ranked
        if self.output_mode == "tf_idf":
            idf = np.log(1 + docs / (1 + np.asarray([doc_counts[t] for t in ranked], np.float64))).astype(np.float32)
            self._set_idf(np.concatenate([np.full(self._token_start(), np.mean(idf), np.float32), idf]))

    def _adapt_batches(self, data):
        """Rows of tokens: an array/list is one batch, any other iterable yields batches."""
        if isinstance(data, (list, tuple, np.ndarray)):
            data = [data]
        for batch in data:
            a = np.asarray(batch, dtype=object)
            a = a.reshape(1, -1) if a.ndim < 2 else a.reshape(a.shape[0], -1)
            yield [list(r) for r in a]

    def get_vocabulary(self, include_special_tokens=True):
        tokens = list(self._tokens or [])
        out = (self._specials() + tokens) if include_special_tokens else tokens
        return [self._public(t) for t in out]

    def _public(self, token):
        return token

    def vocabulary_size(self) -> int:
        return len(self._tokens or []) + self._token_start()

    def _depth(self) -> int:
        return self.max_tokens if self.pad_to_max_tokens else self.vocabulary_size()

    def _require_vocabulary(self):
        if self._tokens is None:
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) has no vocabulary: pass `vocabulary` "
                             "or call adapt() first")

    # -- the NumPy lookup (StringLookup's path; IntegerLookup's eager checks) ----------------------
    def lookup_numpy(self, values: np.ndarray) -> np.ndarray:
        """Token values -> int64 indices (or, with invert, indices -> tokens) elementwise."""
        self._require_vocabulary()
        flat = values.reshape(-1).tolist()
        if self.invert:
            table = dict(enumerate(self.get_vocabulary()))
            out = [self.mask_token if (self.mask_token is not None and i == 0)
                   else table.get(i, self.oov_token) if i >= self._token_start() else self.oov_token for i in flat]
            return np.asarray(out, dtype=object).reshape(values.shape)
        index = {t: i + self._token_start() for i, t in enumerate(self._tokens)}
        masked = np.iinfo(np.int64).max if self.output_mode != "int" else 0   # Keras: never counted
        out = []
        for v in flat:
            key = self._key(v)
            if self.mask_token is not None and key == self.mask_token:
                out.append(masked)
            elif key in index:
                out.append(index[key])
            elif self.num_oov_indices == 0:
                raise ValueError(f"layer '{self.name}': when `num_oov_indices=0` all inputs should be in "
                                 f"vocabulary, found OOV value {self._public(key)!r}; consider num_oov_indices=1")
            else:
                out.append(self._oov_index(key))
        return np.asarray(out, np.int64).reshape(values.shape)

    def _oov_index(self, key) -> int:
        if self.num_oov_indices == 1:
            return self._oov_start()
        from .hashing import fingerprint_buckets     # Keras: to_hash_bucket_fast(value, num_oov_indices)
        return self._oov_start() + int(fingerprint_buckets([key], self.num_oov_indices)[0])

    def encode_numpy(self, indices: np.ndarray) -> np.ndarray:
        """Keras's encode_categorical_inputs on NumPy: one_hot, multi_hot, count or tf_idf over the vocabulary."""
        if self.output_mode == "int":
            return indices
        depth = self._depth()
        if self.output_mode == "one_hot":
            if indices.ndim > 1 and indices.shape[-1] == 1:
                indices = indices[..., 0]
            return _one_hot(indices, depth)
        if indices.ndim == 1:
            indices = indices[None, :]      # one sample, as Keras reduces a rank-1 input's only axis
            hot = _one_hot(indices, depth)
            reduced = hot.max(axis=1) if self.output_mode == "multi_hot" else hot.sum(axis=1)
            reduced = reduced[0]
        else:
            hot = _one_hot(indices, depth)
            reduced = hot.max(axis=1) if self.output_mode == "multi_hot" else hot.sum(axis=1)
        return reduced * self._idf if self.output_mode == "tf_idf" else reduced

    def get_config(self):
        vocabulary = None if self._tokens is None else self.get_vocabulary(include_special_tokens=False)
        idf = None if self._idf is None or self.output_mode != "tf_idf" else \
            self._idf[self._token_start():self.vocabulary_size()].tolist()
        return {**super().get_config(), "invert": self.invert, "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "oov_token": self.oov_token, "mask_token": self.mask_token,
                "output_mode": self.output_mode, "sparse": self.sparse, "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary": vocabulary, "idf_weights": idf,
                "vocabulary_size": None if self._tokens is None else self.vocabulary_size(),
                "oov_method": self.oov_method, "salt": self.salt}


def _i64(value):
    """An int64 constant (a bare Python or NumPy scalar would become an int32 one)."""
    return ops.convert_to_tensor(np.asarray(value, np.int64))


def _one_hot(indices, depth):
    valid = (indices >= 0) & (indices < depth)
    out = np.zeros(indices.shape + (depth,), np.float32)
    np.put_along_axis(out, np.where(valid, indices, 0)[..., None], valid[..., None].astype(np.float32), axis=-1)
    return out


class PythonPreprocessingLayer(Layer):
    """A layer that runs in Python on NumPy data in front of the compiled graph (kcompile has no strings)."""

    def __call__(self, inputs, *args, **kwargs):
        from ..tensor import KTensor
        if isinstance(inputs, KTensor) and inputs.is_symbolic:
            raise TypeError(f"layer '{self.name}' ({type(self).__name__}) runs in Python in front of the compiled "
                            "model: apply it to the data (e.g. x = layer(texts), or dataset.map(layer)), not to a "
                            "symbolic model input")
        return self.call(inputs, *args, **kwargs)


class StringLookup(PythonPreprocessingLayer, IndexLookup):
    """Keras 3's StringLookup (Python, NumPy in and out)."""

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]", vocabulary=None,
                 idf_weights=None, invert=False, output_mode="int", pad_to_max_tokens=False, sparse=False,
                 encoding="utf-8", vocabulary_dtype="string", **kwargs):
        self.encoding = encoding
        IndexLookup.__init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary, idf_weights,
                             invert, output_mode, sparse, pad_to_max_tokens, **kwargs)

    def _key(self, value):
        return value.decode(self.encoding) if isinstance(value, bytes) else value

    def _order_key(self, token):
        return token.encode(self.encoding) if isinstance(token, str) else token

    def call(self, inputs):
        values = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs, dtype=object)
        if self.invert:
            return self.lookup_numpy(values.astype(np.int64)).astype(str)
        return self.encode_numpy(self.lookup_numpy(values))

    def get_config(self):
        return {**super().get_config(), "encoding": self.encoding, "vocabulary_dtype": "string"}


class IntegerLookup(IndexLookup):
    """Keras 3's IntegerLookup, compiled into the graph (integers compared against the vocabulary)."""

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token=-1, output_mode="int",
                 sparse=False, vocabulary=None, vocabulary_dtype="int64", idf_weights=None, invert=False, **kwargs):
        if vocabulary_dtype not in ("int64", "int32"):
            raise ValueError(f"IntegerLookup: vocabulary_dtype must be an integer dtype, got {vocabulary_dtype!r}")
        IndexLookup.__init__(self, max_tokens, num_oov_indices, mask_token, oov_token, vocabulary, idf_weights,
                             invert, output_mode, sparse, **kwargs)

    def _key(self, value):
        return int(value)

    def call(self, inputs):
        self._require_vocabulary()
        if inputs.is_eager and not self.invert and self.num_oov_indices == 0:
            self.lookup_numpy(np.asarray(inputs.numpy()))     # raises, naming an out-of-vocabulary value
        x = ops.cast(inputs, "int64")
        if self.invert:
            return self._invert(x)
        vocab = np.asarray(self._tokens, np.int64)
        hits = ops.cast(ops.equal(ops.expand_dims(x, -1), ops.convert_to_tensor(vocab)), "int64")
        positions = ops.convert_to_tensor(np.arange(self._token_start(), self._token_start() + len(vocab)))
        found = ops.sum(hits, axis=-1)
        index = ops.add(ops.sum(ops.multiply(hits, positions), axis=-1),
                        ops.multiply(ops.subtract(_i64(1), found), self._graph_oov(x)))
        if self.mask_token is not None:
            masked = _i64(0 if self.output_mode == "int" else self._depth())   # out of range: encodes to nothing
            index = ops.where(ops.equal(x, _i64(self.mask_token)), masked, index)
        if self.output_mode == "int":
            return index
        out = encode_categorical(self, index, "count" if self.output_mode == "tf_idf" else self.output_mode,
                                 self._depth())
        return ops.multiply(out, ops.convert_to_tensor(self._idf)) if self.output_mode == "tf_idf" else out

    def _graph_oov(self, x):
        """The OOV index: the one OOV slot, or floormod(x, num_oov_indices) past the mask slot, as Keras."""
        n, start = self.num_oov_indices, self._oov_start()
        if n <= 1:
            return _i64(start if n == 1 else -1)
        n64 = _i64(n)   # (Python ints would lift to int32 constants)
        quotient = ops.cast(ops.floor_divide(x, n64), "int64")
        return ops.add(ops.subtract(x, ops.multiply(quotient, n64)), _i64(start))

    def _invert(self, index):
        table = np.asarray([self.oov_token] * self._token_start() + self._tokens, np.int64)
        inside = ops.logical_and(ops.greater_equal(index, _i64(self._token_start())),
                                 ops.less(index, _i64(self.vocabulary_size())))
        safe = ops.where(inside, index, _i64(0))
        out = ops.where(inside, ops.take(ops.convert_to_tensor(table), safe), _i64(self.oov_token))
        if self.mask_token is not None:
            out = ops.where(ops.equal(index, _i64(0)), _i64(self.mask_token), out)
        return out

    def _oov_index(self, key) -> int:
        n = self.num_oov_indices
        return self._oov_start() + (key % n if n > 1 else 0)

    def get_config(self):
        return {**super().get_config(), "vocabulary_dtype": "int64"}
