"""Hashing: Keras 3's bucketing by FarmHash Fingerprint64 (tf.strings.to_hash_bucket_fast), in Python.

Keras hashes the value's string form (integers as their decimal digits, floats cast to int64 first), so
both paths need Google's FarmHash; it comes from the pyfarmhash bindings when installed, and without them
the layer refuses with a clear error. The salted variant (SipHash, to_hash_bucket_strong) is refused.
"""
from __future__ import annotations

import numpy as np

from .index_lookup import PythonPreprocessingLayer
from .preprocessing_numeric import encode_categorical


def fingerprint_buckets(values, num_buckets: int, encoding="utf-8") -> np.ndarray:
    """Fingerprint64(value) % num_buckets for each str/bytes value, as to_hash_bucket_fast."""
    try:
        import farmhash
    except ImportError:
        raise ImportError("hashing strings as Keras does needs FarmHash's Fingerprint64: pip install pyfarmhash") \
            from None
    return np.asarray([farmhash.fingerprint64(v if isinstance(v, bytes) else str(v).encode(encoding)) % num_buckets
                       for v in values], np.int64)


def as_strings(values: np.ndarray) -> list:
    """tf.as_string's text of each value: strings as they are, numbers (floats truncated) as decimal digits."""
    if values.dtype.kind == "f":
        values = values.astype(np.int64)
    return [v.decode("utf-8") if isinstance(v, bytes) else v if isinstance(v, str) else str(int(v))
            for v in values.reshape(-1).tolist()]


class Hashing(PythonPreprocessingLayer):
    """Keras 3's Hashing layer (num_bins, mask_value, output_mode int/one_hot/multi_hot/count)."""

    def __init__(self, num_bins, mask_value=None, salt=None, output_mode="int", sparse=False, **kwargs):
        for key in ("dtype", "trainable"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        output_mode = "multi_hot" if output_mode == "binary" else output_mode
        if num_bins is None or num_bins <= 0:
            raise ValueError(f"The `num_bins` for `Hashing` cannot be `None` or non-positive values. "
                             f"Received: num_bins={num_bins}.")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise ValueError(f"layer '{self.name}' (Hashing): unknown output_mode {output_mode!r}")
        if salt is not None:
            raise ValueError(f"layer '{self.name}' (Hashing): salt (SipHash, to_hash_bucket_strong) is not supported")
        if sparse:
            raise ValueError(f"layer '{self.name}' (Hashing): sparse outputs are not supported")
        self.num_bins, self.mask_value, self.salt, self.output_mode, self.sparse = (
            int(num_bins), mask_value, salt, output_mode, sparse)

    def call(self, inputs):
        values = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs)
        if values.dtype.kind in "US":
            values = values.astype(object)
        bins = self.num_bins
        texts = as_strings(values)
        masked = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            masked = np.asarray([t == self.mask_value or t == str(self.mask_value) for t in texts])
        out = fingerprint_buckets(texts, bins)
        if masked is not None:
            out = np.where(masked, 0, out + 1)
        out = out.reshape(values.shape)
        if self.output_mode == "int":
            return out
        from ..tensor import convert_to_tensor
        return encode_categorical(self, convert_to_tensor(out), self.output_mode, self.num_bins).numpy()

    def get_config(self):
        return {"name": self.name, "num_bins": self.num_bins, "salt": self.salt, "mask_value": self.mask_value,
                "output_mode": self.output_mode, "sparse": self.sparse}
