"""Attention (Luong dot or concat scores) and AdditiveAttention (Bahdanau), as Keras 3 computes them."""
from __future__ import annotations

from .. import ops
from .attention import causal_mask, check_mask
from .base import Layer
from .core import Dropout


class Attention(Layer):
    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{type(self).__name__} '{self.name}': score_mode must be 'dot' or 'concat', "
                             f"got {score_mode!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"{type(self).__name__} '{self.name}': dropout must be in [0, 1), got {dropout}")
        self.use_scale, self.score_mode, self.dropout, self.seed = use_scale, score_mode, float(dropout), seed
        self.scale = self.concat_score_weight = None
        self._dropout_layer = Dropout(rate=self.dropout, seed=seed) if self.dropout > 0 else None

    def build(self, input_shape):
        self._validate(input_shape)
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(name="concat_score_weight", shape=(), initializer="ones")

    def _validate(self, inputs, mask=None):
        who = f"layer '{self.name}' ({type(self).__name__})"
        listed = isinstance(inputs, (list, tuple)) and 2 <= len(inputs) <= 3
        if not listed or not all(isinstance(t, (list, tuple)) or hasattr(t, "shape") for t in inputs):
            raise ValueError(f"{who} must be called on a list [query, value] or [query, value, key], got {inputs!r}")
        if mask is not None and (not isinstance(mask, (list, tuple)) or not 2 <= len(mask) <= 3):
            raise ValueError(f"{who}: mask must be a list [query_mask, value_mask], got {mask!r}")
        shapes = [tuple(getattr(t, "shape", t)) for t in inputs]
        q, v = shapes[0], shapes[1]
        k = shapes[2] if len(shapes) > 2 else v
        if len(q) < 2 or len(q) != len(v) or len(k) != len(v):
            raise ValueError(f"{who}: query, value and key must share a rank >= 2, got shapes {q}, {v}, {k}")
        if k[-2] != v[-2]:
            raise ValueError(f"{who}: key and value must have the same length (axis -2), got key shape {k} and value "
                             f"shape {v}")
        if q[-1] != k[-1]:  # dot scores contract q with k; concat and additive scores add them
            raise ValueError(f"{who}: query and key must have the same last dimension, got query shape {q} and key "
                             f"shape {k}")

    def _scores(self, q, k):
        if self.score_mode == "dot":
            scores = ops.matmul(q, ops.transpose(k, list(range(k.ndim - 2)) + [k.ndim - 1, k.ndim - 2]))
            return ops.multiply(scores, self.scale) if self.scale is not None else scores
        summed = ops.add(ops.expand_dims(q, -2), ops.expand_dims(k, -3))
        if self.scale is not None:
            summed = ops.multiply(self.scale, summed)
        return ops.multiply(self.concat_score_weight, ops.sum(ops.tanh(summed), axis=-1))

    def call(self, inputs, mask=None, training=False, return_attention_scores=False, use_causal_mask=False):
        inputs = [ops.convert_to_tensor(t) for t in inputs]
        if mask is None and any(getattr(t, "_keras_mask", None) is not None for t in inputs):
            mask = [getattr(t, "_keras_mask", None) for t in inputs]
        self._validate(inputs, mask)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        q_mask = check_mask(self, mask[0], q.shape[:-1], "query mask") if mask else None
        v_mask = check_mask(self, mask[1], v.shape[:-1], "value mask") if mask else None
        scores = self._scores(q, k)
        scores_mask = v_mask
        if scores_mask is not None and scores_mask.ndim == 2:
            scores_mask = ops.expand_dims(scores_mask, -2)
        if use_causal_mask:
            causal = causal_mask(scores.shape[-2], scores.shape[-1])
            scores_mask = causal if scores_mask is None else ops.logical_and(scores_mask, causal)
        if scores_mask is not None:
            scores = ops.where(scores_mask, scores, ops.subtract(scores, 1e9))
        weights = ops.softmax(scores, axis=-1)
        dropped = self._dropout_layer(weights, training=training) if self._dropout_layer and training else weights
        out = ops.matmul(dropped, v)
        if q_mask is not None:
            out = ops.where(ops.expand_dims(q_mask, -1), out, 0.0)
            out._keras_mask = q_mask
        return (out, weights) if return_attention_scores else out

    def compute_output_shape(self, input_shape):
        self._validate(input_shape)
        return (*tuple(input_shape[0])[:-1], tuple(input_shape[1])[-1])

    def compute_mask(self, inputs, mask=None):
        return None if mask is None or mask[0] is None else ops.convert_to_tensor(mask[0])

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        self._validate(input_shape)
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(input_shape[0][-1],), initializer="glorot_uniform")

    def _scores(self, q, k):
        summed = ops.tanh(ops.add(ops.expand_dims(q, -2), ops.expand_dims(k, -3)))
        return ops.sum(ops.multiply(self.scale, summed) if self.scale is not None else summed, axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
