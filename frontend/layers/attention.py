"""MultiHeadAttention (Keras 3 weights, equations and masking), on EinsumDense projections.

Keras computes attention two ways and they differ where a query row is wholly masked: with no
dropout, no returned scores and a rank-3 query it calls dot_product_attention (masked logits set to
-0.7 * float32 max, so a wholly masked row attends uniformly); otherwise it uses its Softmax layer
(masked logits set to -1e9 and masked weights zeroed afterwards). Both are mirrored here.
"""
from __future__ import annotations

import math
import string

import numpy as np

from .. import ops, regularizers
from ..variables import name_scope
from .base import Layer
from .core import Dropout
from .einsum_dense import EinsumDense, kernel_bias_config, set_kernel_bias_options
from .serial import ser_reg

DOT_PRODUCT_MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)   # jax dot_product_attention's
SOFTMAX_MASK_VALUE = -1e9                                          # keras.layers.Softmax's


def masked_softmax(scores, mask, axes, zero_masked: bool):
    """Softmax over `axes` with `mask` (bool, broadcastable; False = masked) in one of Keras's two forms."""
    if mask is not None:
        scores = ops.where(mask, scores, SOFTMAX_MASK_VALUE if zero_masked else DOT_PRODUCT_MASK_VALUE)
    if len(axes) == 1:
        out = ops.softmax(scores, axis=axes[0])
    else:
        out = ops.exp(ops.subtract(scores, ops.logsumexp(scores, axis=axes, keepdims=True)))
    if mask is not None and zero_masked:
        out = ops.where(mask, out, 0.0)
    return out


def causal_mask(q_len: int, v_len: int) -> np.ndarray:
    """[1, T, S] bool: query i sees keys j <= i (Keras builds it from two cumsums of ones)."""
    return np.tril(np.ones((q_len, v_len), bool))[None]


def check_mask(layer, mask, expected, what):
    """A mask must broadcast to `expected` without adding axes; a clear error names the layer otherwise."""
    if mask is None:
        return None
    mask = ops.convert_to_tensor(mask)
    shape = mask.shape
    ok = len(shape) <= len(expected) and all(m is None or e is None or m in (1, e)
                                             for m, e in zip(shape[::-1], expected[::-1]))
    if not ok:
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}): {what} must have shape {tuple(expected)} "
                         f"(or broadcast to it), got shape {tuple(shape)}")
    return mask if mask.dtype == "bool" else ops.not_equal(mask, 0)


def _letters(n, start=0):
    return string.ascii_lowercase[start:start + n]


def projection_equation(free_dims, bound_dims, output_dims):
    """Keras's _build_proj_equation: (equation, bias axes, output rank)."""
    inp = _letters(free_dims) + _letters(bound_dims, free_dims)
    kernel = _letters(bound_dims, free_dims) + _letters(output_dims, free_dims + bound_dims)
    out = _letters(free_dims) + _letters(output_dims, free_dims + bound_dims)
    return f"{inp},{kernel}->{out}", _letters(output_dims, free_dims + bound_dims), len(out)


def attention_equations(rank, attn_axes):
    """Keras's _build_attention_equation: (scores equation, combine equation, scores rank)."""
    target = _letters(rank)
    batch_dims = [i for i in range(rank) if i not in attn_axes and i != rank - 1]
    source, offset = "", rank
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += _letters(1, offset)
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attn_axes] +
                      [source[i] for i in attn_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}", len(product)


class MultiHeadAttention(Layer):
    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, **kwargs):
        for name, v, optional in (("num_heads", num_heads, False), ("key_dim", key_dim, False),
                                  ("value_dim", value_dim, True)):
            if not (optional and v is None) and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ValueError(f"MultiHeadAttention: {name} must be a positive integer, got {v!r}")
        if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window <= 0):
            raise ValueError(f"MultiHeadAttention: sliding_window must be None or a positive integer, "
                             f"got {sliding_window!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"MultiHeadAttention: dropout must be in [0, 1), got {dropout}")
        if flash_attention and dropout > 0:
            raise ValueError("MultiHeadAttention: dropout is not supported with flash_attention=True")
        super().__init__(**kwargs)
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim or key_dim
        self.dropout, self.use_bias, self.use_gate, self.seed = float(dropout), use_bias, use_gate, seed
        self.sliding_window, self.flash_attention = sliding_window, flash_attention
        if output_shape is not None and not isinstance(output_shape, (int, list, tuple)):
            raise ValueError(f"MultiHeadAttention: output_shape must be an int, list or tuple, got {output_shape!r}")
        self.partial_output_shape = (output_shape,) if isinstance(output_shape, int) else \
            (tuple(output_shape) if output_shape else None)
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes is not None and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"MultiHeadAttention: attention_axes must be an int, list or tuple, "
                             f"got {attention_axes!r}")
        self.attention_axes = None if attention_axes is None else tuple(attention_axes)
        set_kernel_bias_options(self, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                                kernel_constraint, bias_constraint)
        self.sublayer_activity_regularizer = regularizers.get(activity_regularizer)  # Keras gives it to the projections
        self.query_dense = self.key_dense = self.gate_dense = self.value_dense = self.output_dense = None

    # -- building: needs the query, value and key shapes, so it runs from call() ----------------
    def _maybe_build(self, inputs):
        pass

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        who = f"layer '{self.name}' (MultiHeadAttention)"
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(f"{who}: all dimensions of value and key except the last must be equal, got value shape "
                             f"{tuple(value_shape)} and key shape {tuple(key_shape)}")
        if len(query_shape) != len(value_shape):
            raise ValueError(f"{who}: query and value must have the same rank, got query shape {tuple(query_shape)} "
                             f"and value shape {tuple(value_shape)}")
        self.query_dense = self._projection(query_shape, self.key_dim, "query")
        self.key_dense = self._projection(key_shape, self.key_dim, "key")
        if self.use_gate:
            self.gate_dense = self._projection(query_shape, self.value_dim, "gate", activation="sigmoid")
        self.value_dense = self._projection(value_shape, self.value_dim, "value")
        rank = len(query_shape) + 1
        axes = tuple(range(1, rank - 2)) if self.attention_axes is None else \
            tuple(a if a >= 0 else (rank - 1) + a for a in self.attention_axes)
        self._axes = axes
        self._scores_eq, self._combine_eq, scores_rank = attention_equations(rank, axes)
        self._softmax_axes = tuple(range(scores_rank - len(axes), scores_rank))
        self._dropout_layer = Dropout(rate=self.dropout, seed=self.seed)
        out_dims = self.partial_output_shape or (query_shape[-1],)
        eq, bias_axes, out_rank = projection_equation(len(query_shape) - 1, 2, len(out_dims))
        self.output_dense = self._einsum_dense(eq, [None] * (out_rank - 1 - len(out_dims)) + list(out_dims), bias_axes,
                                               "attention_output")
        self._sub_build(self.output_dense, tuple(query_shape[:-1]) + (self.num_heads, self.value_dim))
        self._built_shapes = (tuple(query_shape), tuple(value_shape), tuple(key_shape))
        self._build_shapes = tuple(query_shape)
        self.built = True

    def _einsum_dense(self, equation, output_shape, bias_axes, name, activation=None):
        def fresh(init):  # each projection gets its own initializer object, as Keras
            return type(init).from_config(init.get_config()) if hasattr(init, "get_config") else init
        return EinsumDense(equation, output_shape, activation=activation,
                           bias_axes=bias_axes if self.use_bias else None,
                           kernel_initializer=fresh(self.kernel_initializer),
                           bias_initializer=fresh(self.bias_initializer),
                           kernel_regularizer=self.kernel_regularizer, bias_regularizer=self.bias_regularizer,
                           activity_regularizer=self.sublayer_activity_regularizer,
                           kernel_constraint=self.kernel_constraint, bias_constraint=self.bias_constraint, name=name)

    def _projection(self, shape, dim, name, activation=None):
        eq, bias_axes, out_rank = projection_equation(len(shape) - 1, 1, 2)
        layer = self._einsum_dense(eq, [None] * (out_rank - 3) + [self.num_heads, dim], bias_axes, name, activation)
        self._sub_build(layer, shape)
        return layer

    @staticmethod
    def _sub_build(layer, shape):
        with name_scope(layer.name):
            layer.build(tuple(shape))
        layer.built = True

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        if not args and "query" in kwargs:  # mha(query=q, value=v): the base class wants the first input first
            kwargs = dict(kwargs)
            args = (kwargs.pop("query"),)
        return super().__call__(*args, **kwargs)

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        query, value = ops.convert_to_tensor(query), ops.convert_to_tensor(value)
        if key is not None:
            key = ops.convert_to_tensor(key)
            key_mask = _keras_mask(key) if key_mask is None else key_mask
        key = value if key is None else key
        query_mask = _keras_mask(query) if query_mask is None else query_mask
        value_mask = _keras_mask(value) if value_mask is None else value_mask
        if not self.built:
            self.build(query.shape, value.shape, key.shape)
        self._check_inputs(query, value, key)
        mask = self._attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask)
        gate = self.gate_dense(query) if self.gate_dense is not None else None
        q, k, v = self.query_dense(query), self.key_dense(key), self.value_dense(value)
        out, scores = self._attend(q, k, v, mask, bool(training), return_attention_scores)
        out = self.output_dense(ops.multiply(out, gate) if gate is not None else out)
        if query_mask is not None:
            out._keras_mask = ops.convert_to_tensor(query_mask)
        return (out, scores) if return_attention_scores else out

    def _check_inputs(self, query, value, key):
        who = f"layer '{self.name}' (MultiHeadAttention)"
        for what, t, built in zip(("query", "value", "key"), (query, value, key), self._built_shapes):
            if len(t.shape) != len(built) or any(b is not None and g != b for g, b in zip(t.shape[1:], built[1:])):
                raise ValueError(f"{who}: {what} must have shape {built} (as when the layer was built), "
                                 f"got shape {t.shape}")
        q_batch = [d for i, d in enumerate(query.shape[1:-1], 1) if i not in self._axes]
        v_batch = [d for i, d in enumerate(value.shape[1:-1], 1) if i not in self._axes]
        if q_batch != v_batch:
            raise ValueError(f"{who}: query shape {query.shape} and value shape {value.shape} must agree on every "
                             f"axis except the attention axes {self._axes} and the last")

    def _attention_mask(self, query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
        q_shape, v_shape = tuple(query.shape[:-1]), tuple(value.shape[:-1])
        masks = []
        query_mask = check_mask(self, query_mask, q_shape, "query_mask")
        if query_mask is not None:
            masks.append(ops.expand_dims(query_mask, -1))
        for name, m in (("value_mask", value_mask), ("key_mask", key_mask)):
            m = check_mask(self, m, v_shape, name)
            if m is not None:
                masks.append(ops.expand_dims(m, -2))
        if use_causal_mask or self.sliding_window is not None:
            if len(q_shape) != 2:
                raise ValueError(f"layer '{self.name}' (MultiHeadAttention): use_causal_mask and sliding_window need "
                                 f"a rank-3 query (batch, time, features), got shape {query.shape}")
            t, s = q_shape[1], v_shape[1]
            if use_causal_mask:
                masks.append(causal_mask(t, s))
            if self.sliding_window is not None:
                rows, cols = np.arange(t)[:, None], np.arange(s)[None, :]
                masks.append((np.abs(rows - cols) < self.sliding_window)[None])
        scores_shape = (None,) + tuple(q_shape[1:]) + tuple(v_shape[1:])
        if attention_mask is not None:
            masks.insert(0, check_mask(self, attention_mask, scores_shape, "attention_mask"))
        if not masks:
            return None
        combined = masks[0]
        for m in masks[1:]:
            combined = ops.logical_and(combined, m)
        return combined

    def _attend(self, q, k, v, mask, training, return_scores):
        q = ops.multiply(q, 1.0 / math.sqrt(float(self.key_dim)))
        scores = ops.einsum(self._scores_eq, k, q)
        if mask is not None:
            mask = ops.convert_to_tensor(mask)
            for _ in range(len(scores.shape) - len(mask.shape)):
                mask = ops.expand_dims(mask, -len(self._axes) * 2 - 1)
        dot_product_path = not (self.dropout > 0 or return_scores or len(q.shape) != 4)
        weights = masked_softmax(scores, mask, self._softmax_axes, zero_masked=not dot_product_path)
        dropped = self._dropout_layer(weights, training=training) if self.dropout > 0 else weights
        return ops.einsum(self._combine_eq, dropped, v), weights

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is not None and key_shape is not None and tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(f"layer '{self.name}' (MultiHeadAttention): all dimensions of value and key except the "
                             f"last must be equal, got value shape {tuple(value_shape)} and key shape "
                             f"{tuple(key_shape)}")
        return tuple(query_shape[:-1]) + tuple(self.partial_output_shape or query_shape[-1:])

    def compute_mask(self, query, value=None, key=None, mask=None, **kwargs):
        return _keras_mask(query)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "use_gate": self.use_gate,
                "output_shape": list(self.partial_output_shape) if self.partial_output_shape else None,
                "attention_axes": list(self.attention_axes) if self.attention_axes is not None else None,
                "sliding_window": self.sliding_window, "flash_attention": self.flash_attention,
                "activity_regularizer": ser_reg(self.sublayer_activity_regularizer), **kernel_bias_config(self),
                "seed": self.seed}


def _keras_mask(t):
    return getattr(t, "_keras_mask", None)
