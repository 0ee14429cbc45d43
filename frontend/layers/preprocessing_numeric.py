"""Numeric preprocessing layers that compile into the graph: Normalization, Discretization, CategoryEncoding.

Their state (mean/variance, bin boundaries, vocabulary sizes) is fixed before the graph is traced, by
constructor arguments or `adapt` on NumPy data, so the compiled graph only sees constants and weights.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .base import Layer

EPSILON = 1e-7      # Keras's backend.epsilon(): the floor of the standard deviation


def batches(data):
    """adapt()'s input as a list of NumPy batches: an array (one batch), an iterable of batches, a kc Dataset."""
    if isinstance(data, (list, tuple)) and data and not isinstance(data[0], (np.ndarray, list, tuple)):
        return [np.asarray(data)]
    if isinstance(data, np.ndarray) or hasattr(data, "numpy"):
        return [np.asarray(data.numpy() if hasattr(data, "numpy") else data)]
    if not hasattr(data, "__iter__"):
        raise TypeError(f"adapt() expects a NumPy array or an iterable of batches, got {type(data).__name__}")
    out = [np.asarray(b[0] if isinstance(b, tuple) else b) for b in data]
    if not out:
        raise ValueError("adapt() received an empty iterable (no batches)")
    return out


def encode_categorical(layer, indices, mode: str, depth: int, count_weights=None):
    """Keras's encode_categorical_inputs: int, one_hot, multi_hot or count over `depth` classes (float32)."""
    if mode == "int":
        return ops.cast(indices, "int32")
    if mode == "one_hot":
        if indices.ndim > 1 and indices.shape[-1] == 1:
            indices = ops.squeeze(indices, axis=-1)
        return ops.one_hot(ops.cast(indices, "int32"), depth)
    if indices.ndim != 2:
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): output_mode={mode!r} encodes a batch of "
                         f"token lists shaped (batch, tokens); got shape {indices.shape}")
    hot = ops.one_hot(ops.cast(indices, "int32"), depth)
    if mode == "multi_hot":
        return ops.max(hot, axis=1)
    if count_weights is not None:
        hot = ops.multiply(hot, ops.expand_dims(ops.cast(count_weights, "float32"), -1))
    return ops.sum(hot, axis=1)


class Normalization(Layer):
    """Keras 3's Normalization: (x - mean) / max(sqrt(variance), 1e-7), per position of the kept `axis`."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None and np.shape(mean) != np.shape(variance):
            raise ValueError(f"layer '{self.name}': `mean` shape {np.shape(mean)} differs from `variance` shape "
                             f"{np.shape(variance)}")
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)

    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"layer '{self.name}' (Normalization): axis {self.axis} is out of range for inputs of "
                             f"rank {ndim} (shape {tuple(input_shape)})")
        self._keep = tuple(sorted(a % ndim for a in self.axis))
        if 0 in self._keep:
            raise ValueError(f"layer '{self.name}' (Normalization): the batch axis cannot be a kept axis")
        self._broadcast = tuple(input_shape[d] if d in self._keep else 1 for d in range(ndim))
        shape = tuple(input_shape[d] for d in self._keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="mean")
            self.adapt_variance = self.add_weight(shape=shape, initializer="ones", trainable=False, name="variance")
            self.count = self.add_weight(shape=(), initializer="zeros", dtype="int64", trainable=False, name="count")
        self._input_shape = tuple(input_shape)

    def _constants(self):
        mean, var = (np.asarray(self.input_mean, np.float32), np.asarray(self.input_variance, np.float32))
        if mean.ndim:      # trailing kept axes, as Keras reshapes them
            shape = [1] * len(self._broadcast)
            for i in range(1, mean.ndim + 1):
                shape[self._keep[-i]] = mean.shape[-i]
            mean, var = mean.reshape(shape), var.reshape(shape)
        return np.broadcast_to(mean, self._broadcast), np.broadcast_to(var, self._broadcast)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.input_mean is None:
            mean, var = ops.reshape(self.adapt_mean, self._broadcast), ops.reshape(self.adapt_variance, self._broadcast)
        else:
            mean, var = (ops.convert_to_tensor(np.ascontiguousarray(a)) for a in self._constants())
        std = ops.maximum(ops.sqrt(var), EPSILON)
        return ops.add(mean, ops.multiply(x, std)) if self.invert else ops.divide(ops.subtract(x, mean), std)

    def adapt(self, data):
        """Mean and variance over every axis but the kept ones, merged batch by batch as Keras does."""
        parts = [b.astype(np.float32) for b in batches(data)]
        if not self.built:
            self.build((None,) + parts[0].shape[1:])
            self.built = True
        if self.input_mean is not None:
            raise ValueError(f"layer '{self.name}' (Normalization) was given mean and variance; it cannot adapt")
        for b in parts:
            if any(b.shape[d] != self._input_shape[d] for d in self._keep):
                raise ValueError(f"layer '{self.name}' (Normalization) was built for inputs {self._input_shape}, "
                                 f"adapt() got a batch of shape {b.shape}")
        reduce = tuple(d for d in range(len(self._broadcast)) if d not in self._keep)
        if len(parts) == 1:
            mean, var = np.mean(parts[0], axis=reduce), np.var(parts[0], axis=reduce)
        else:
            mean, var, count = np.zeros(self.adapt_mean.shape), np.zeros(self.adapt_mean.shape), 0
            for b in parts:
                n = int(np.prod([b.shape[d] for d in reduce])) if reduce else 1
                count += n
                w = n / count
                b_mean, b_var = np.mean(b, axis=reduce), np.var(b, axis=reduce)
                new_mean = mean * (1 - w) + b_mean * w
                var = (var + (mean - new_mean) ** 2) * (1 - w) + (b_var + (b_mean - new_mean) ** 2) * w
                mean = new_mean
        self.adapt_mean.assign(np.asarray(mean, np.float32))
        self.adapt_variance.assign(np.asarray(var, np.float32))

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(), "variance": np.array(self.input_variance).tolist()}


class Discretization(Layer):
    """Keras 3's Discretization: bucket index = number of boundaries <= x; adapt() finds quantile boundaries."""

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if sparse:
            raise ValueError(f"layer '{self.name}' (Discretization): sparse outputs are not supported")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise ValueError(f"Unknown value for `output_mode`: {output_mode!r}; expected one of int, one_hot, "
                             "multi_hot, count")
        if num_bins is not None and num_bins < 0:
            raise ValueError(f"`num_bins` must be greater than or equal to 0. Received: `num_bins={num_bins}`")
        if (num_bins is None) == (bin_boundaries is None):
            raise ValueError("Set exactly one of `num_bins` and `bin_boundaries`; received "
                             f"num_bins={num_bins}, bin_boundaries={bin_boundaries}")
        self.bin_boundaries = None if bin_boundaries is None else [float(b) for b in bin_boundaries]
        self.num_bins, self.epsilon, self.output_mode, self.sparse = num_bins, epsilon, output_mode, sparse
        self._summary = np.zeros((2, 0), np.float32)

    def adapt(self, data, steps=None):
        if self.num_bins is None:
            raise ValueError("Cannot adapt a Discretization layer that has been initialized with `bin_boundaries`, "
                             "use `num_bins` instead.")
        self._summary = np.zeros((2, 0), np.float32)
        for i, b in enumerate(batches(data)):
            if steps is not None and i >= steps:
                break
            self._summary = _merge_summaries(_summarize(b.astype(np.float32), self.epsilon), self._summary,
                                             self.epsilon)
        self.bin_boundaries = _compress_summary(self._summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError(f"layer '{self.name}' (Discretization): pass `bin_boundaries` or call adapt() first")
        x = ops.expand_dims(ops.cast(inputs, "float32"), -1)
        bounds = ops.convert_to_tensor(np.asarray(self.bin_boundaries, np.float32))
        index = ops.sum(ops.cast(ops.greater_equal(x, bounds), "int32"), axis=-1)
        return encode_categorical(self, index, self.output_mode, len(self.bin_boundaries) + 1)

    def get_config(self):
        # Keras's keys exactly (its Discretization takes no `trainable`)
        return {"bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins, "epsilon": self.epsilon,
                "output_mode": self.output_mode, "sparse": self.sparse, "name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        bounds = config.pop("bin_boundaries", None) if config.get("num_bins") is not None else None
        layer = cls(**config)
        if bounds is not None:      # an adapted layer keeps both, as Keras's from_config
            layer.bin_boundaries = [float(b) for b in bounds]
        return layer


# Keras's streaming quantile summary (discretization.py): sorted values spaced by 1/epsilon, with weights
def _summarize(values, epsilon):
    values = np.sort(values.reshape(-1))
    step = max(values.size / (1.0 / epsilon), 1)
    bounds = values[int(step - 1)::int(step)]
    return np.stack([bounds, np.ones_like(bounds) * step])


def _merge_summaries(prev, new, epsilon):
    merged = np.concatenate((prev, new), axis=1)
    return _compress_summary(np.take(merged, np.argsort(merged[0]), axis=1), epsilon)


def _compress_summary(summary, epsilon):
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum = summary[1].cumsum()
    cum_percents = cum / cum[-1]
    bins = np.interp(percents, cum_percents, summary[0])
    cum = np.interp(percents, cum_percents, cum)
    return np.stack((bins, cum - np.concatenate((np.array([0]), cum[:-1])))).astype("float32")


class CategoryEncoding(Layer):
    """Keras 3's CategoryEncoding: integer tokens to one_hot, multi_hot or count vectors of num_tokens."""

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        output_mode = "multi_hot" if output_mode == "binary" else output_mode
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"Unknown arg for output_mode: {output_mode}")
        if num_tokens is None or num_tokens < 1:
            raise ValueError(f"`num_tokens` must be set and >= 1. Received: num_tokens={num_tokens}.")
        if sparse:
            raise ValueError(f"layer '{self.name}' (CategoryEncoding): sparse outputs are not supported")
        self.num_tokens, self.output_mode, self.sparse = int(num_tokens), output_mode, sparse

    def call(self, inputs, count_weights=None):
        if count_weights is not None and self.output_mode != "count":
            raise ValueError("`count_weights` is not used when `output_mode` is not `'count'`. "
                             f"Received `count_weights={count_weights}`.")
        return encode_categorical(self, inputs, self.output_mode, self.num_tokens, count_weights)

    def get_config(self):
        return {**super().get_config(), "num_tokens": self.num_tokens, "output_mode": self.output_mode,
                "sparse": self.sparse}
