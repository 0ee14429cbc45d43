"""kc.random: Keras 3's `keras.random` functions, eager, drawn from NumPy generators.

`seed` is an int (a fresh generator per call, so the same seed gives the same draw), a SeedGenerator
(a stream that advances per call) or None (the global stream that kc.utils.set_random_seed seeds).
The draws are NumPy's, so values differ from JAX's for the same seed; distributions and shapes match.
"""
from __future__ import annotations

import numpy as np

from .initializers import _rng, _truncated_normal
from .tensor import KTensor, convert_to_tensor


class SeedGenerator:
    """A seeded random stream: each call that takes it draws the next values."""

    def __init__(self, seed=None, name=None):
        self.seed, self.name = seed, name
        self.rng = _rng(seed) if seed is None else np.random.default_rng(seed)

    def get_config(self):
        return {"seed": self.seed}


def _generator(seed) -> np.random.Generator:
    return seed.rng if isinstance(seed, SeedGenerator) else _rng(seed)


def _out(values, dtype):
    return convert_to_tensor(np.asarray(values).astype(dtype or "float32"))


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return _out(_generator(seed).normal(mean, stddev, tuple(shape)), dtype)


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    return _out(_generator(seed).uniform(minval, maxval, tuple(shape)), dtype)


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return _out(_generator(seed).integers(minval, maxval, tuple(shape)), dtype)


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return _out(_truncated_normal(_generator(seed), mean, stddev, tuple(shape)), dtype)


def categorical(logits, num_samples, dtype="int32", seed=None):
    """`num_samples` class ids per row of `logits` (batch, classes), drawn from softmax(logits)."""
    logits = _array(logits)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    rng = _generator(seed)
    return _out(np.stack([rng.choice(p.shape[-1], size=num_samples, p=row) for row in p]), dtype)


def dropout(inputs, rate, noise_shape=None, seed=None):
    """Zero each value with probability `rate`, scale the kept ones by 1 / (1 - rate)."""
    x = _array(inputs)
    keep = _generator(seed).uniform(size=noise_shape or x.shape) >= rate
    return _out(np.where(keep, x / (1.0 - rate), 0.0), x.dtype)


def shuffle(x, axis=0, seed=None):
    x = _array(x)
    return _out(_generator(seed).permutation(x, axis=axis), x.dtype)


def gamma(shape, alpha, dtype=None, seed=None):
    return _out(_generator(seed).gamma(alpha, 1.0, tuple(shape)), dtype)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    return _out(_generator(seed).binomial(counts, probabilities, tuple(shape)), dtype)


def beta(shape, alpha, beta, dtype=None, seed=None):
    return _out(_generator(seed).beta(alpha, beta, tuple(shape)), dtype)


def _array(x) -> np.ndarray:
    if isinstance(x, KTensor):
        if x.data is None:
            raise ValueError("kc.random works on concrete values, not on symbolic or traced tensors")
        return np.asarray(x.data)
    return np.asarray(x)
