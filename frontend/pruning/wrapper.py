"""PruneLowMagnitude: TF-MOT's light wrapper. It holds the mask state; the masking is IR.

In every call (training and inference) the wrapped layer runs with `weight * mask` in place of its
weight, so the traced graph multiplies the weight param by the mask param: the forward pass and the
gradient (zero for pruned weights) both see the masked weight, natively, in the compiled step. The
masks are updated between steps by the UpdatePruningStep callback on the schedule's steps (a NumPy
partition of |w|, once per `frequency` steps), which keeps the compiled step free of sorting.
State, saved with the model: one `mask` and `threshold` per pruned weight and the `pruning_step`.
"""
from __future__ import annotations

import abc
import contextlib

import numpy as np

from ..layers.base import Layer, _dedup
from ..layers.conv import Conv1D, Conv2D
from ..layers.core import Dense, Embedding
from ..saving import register_keras_serializable
from ..variables import name_scope
from . import masks as M
from .schedules import ConstantSparsity, deserialize

PRUNABLE = {Dense: ("kernel",), Conv1D: ("kernel",), Conv2D: ("kernel",), Embedding: ("embeddings",)}
CALLBACK_ERROR = ("Prune() wrapper requires the UpdatePruningStep callback to be provided during training. "
                  "Please add it as a callback to your model.fit call.")


class PrunableLayer(abc.ABC):
    """Mix into a custom layer (as tfmot's PrunableLayer): get_prunable_weights() lists the weights to prune."""

    @abc.abstractmethod
    def get_prunable_weights(self) -> list:
        """The layer's weight variables to prune (available once the layer is built)."""


def is_prunable(layer) -> bool:
    """A built-in prunable layer, or a custom one with get_prunable_weights (TF-MOT's PrunableLayer)."""
    return type(layer) in PRUNABLE or hasattr(layer, "get_prunable_weights")


def prunable_attributes(layer) -> tuple:
    """Names of the (built) layer's attributes holding the weights to prune."""
    for cls, attrs in PRUNABLE.items():
        if type(layer) is cls:
            return attrs
    if hasattr(layer, "get_prunable_weights"):
        wanted = [id(w) for w in layer.get_prunable_weights()]
        found = {id(v): k for k, v in vars(layer).items() if id(v) in wanted}
        missing = [w for w in wanted if w not in found]
        if missing:
            raise ValueError(f"layer '{layer.name}': get_prunable_weights() returned weights that are not "
                             "attributes of the layer")
        return tuple(found[w] for w in wanted)
    raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) cannot be pruned")


def supported_names() -> str:
    return ", ".join(c.__name__ for c in PRUNABLE) + " (or a layer with get_prunable_weights())"


@register_keras_serializable(package="kcompile")
class PruneLowMagnitude(Layer):
    """Prunes the weights of `layer` by magnitude on `pruning_schedule`'s steps (see module doc)."""

    def __init__(self, layer, pruning_schedule=None, block_size=(1, 1), block_pooling_type="AVG",
                 sparsity_m_by_n=None, threshold_group=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"PruneLowMagnitude wraps a Layer instance, got {type(layer).__name__}")
        kwargs["name"] = f"prune_low_magnitude_{layer.name}"
        super().__init__(**kwargs)
        who = f"prune_low_magnitude: layer '{layer.name}' ({type(layer).__name__})"
        if not is_prunable(layer):
            raise ValueError(f"{who} cannot be pruned: supported layers are {supported_names()}")
        if block_pooling_type not in ("AVG", "MAX"):
            raise ValueError(f"{who}: unsupported block_pooling_type {block_pooling_type!r}; should be 'AVG' or 'MAX'")
        block_size = tuple(block_size)
        if len(block_size) != 2 or not all(isinstance(b, (int, np.integer)) and (b > 0 or b == -1)
                                           for b in block_size):
            raise ValueError(f"{who}: block_size must be two positive ints (or -1 for a whole axis), got {block_size}")
        if sparsity_m_by_n and block_size != (1, 1):
            raise ValueError(f"{who}: sparsity_m_by_n and block_size cannot be combined")
        if sparsity_m_by_n and threshold_group is not None:
            raise ValueError(f"{who}: sparsity_m_by_n prunes within each group of n weights; it has no threshold to "
                             f"share (threshold_scope='global' / threshold_group={threshold_group!r})")
        if threshold_group is not None and not (isinstance(threshold_group, str) and threshold_group):
            raise ValueError(f"{who}: threshold_group must be a non-empty string, got {threshold_group!r}")
        self.layer = layer
        self.pruning_schedule = deserialize(pruning_schedule or ConstantSparsity(0.5, 0))
        self.block_size = block_size
        self.block_pooling_type = block_pooling_type
        self.sparsity_m_by_n = M.parse_m_by_n(sparsity_m_by_n, who) if sparsity_m_by_n else None
        self.threshold_group = threshold_group   # wrappers naming the same group share one magnitude threshold
        self._who = who
        self.pruning_vars = []            # (attribute, mask, threshold)
        self._batch_input_shape = layer._batch_input_shape
        if layer.built:
            self._check_and_make_state()

    # -- state ----------------------------------------------------------------------------------
    def build(self, input_shape):
        if not self.layer.built:
            with name_scope(self.layer.name):
                self.layer.build(input_shape)
            self.layer._build_shapes = input_shape
            self.layer.built = True
        if not self.pruning_vars:
            self._check_and_make_state()

    def _check_and_make_state(self):
        attrs = prunable_attributes(self.layer)
        with name_scope(self.name):
            for attr in attrs:
                prefix = "" if len(attrs) == 1 else f"{attr}_"     # TF-MOT's names; unique paths for several
                shape = tuple(getattr(self.layer, attr).shape)
                if self.sparsity_m_by_n:
                    self.sparsity_m_by_n = M.check_m_by_n(self.sparsity_m_by_n, shape, self._who)
                elif self.block_size != (1, 1):
                    M.resolve_block(self.block_size, shape, self._who)
                mask = self.add_weight(shape=shape, initializer="ones", trainable=False, name=f"{prefix}mask")
                threshold = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                            name=f"{prefix}threshold")
                self.pruning_vars.append((attr, mask, threshold))
            self.pruning_step = self.add_weight(shape=(), initializer="zeros", dtype="int64", trainable=False,
                                                name="pruning_step")
        self.pruning_step.assign(-1)

    def _uses_scope(self) -> bool:
        return False    # the wrapped layer keeps its own weight paths ("dense/kernel"); masks get ours

    @property
    def weights(self) -> list:
        """The wrapped layer's weights, then mask, threshold (per pruned weight) and pruning_step, as TF-MOT."""
        return _dedup(self.layer.weights + [v for v in self._own_variables])

    def get_weights(self) -> list:
        return self.layer.get_weights()      # TF-MOT: the wrapped layer's weights only

    def set_weights(self, weights):
        self.layer.set_weights(weights)

    # -- mask updates (called by UpdatePruningStep between steps) ------------------------------
    def should_update_masks(self, step: int) -> bool:
        if self.sparsity_m_by_n:
            return step == 1           # TF-MOT fixes an m-by-n pattern at the first step
        return self.pruning_schedule(step)[0]

    def update_masks(self, step: int):
        """New masks from the magnitudes of the masked weights at `step`; the weights are re-masked."""
        sparsity = self.pruning_schedule(step)[1]
        for attr, mask, threshold in self.pruning_vars:
            w = getattr(self.layer, attr).numpy() * mask.numpy()   # a pruned weight is 0, as in TF-MOT
            if self.sparsity_m_by_n:
                t, m = np.float32(999.0), M.m_by_n_mask(w, self.sparsity_m_by_n)
            else:
                t, keep = M.magnitude_mask(self._scores(w), sparsity)
                m = self._spread(keep, w.shape)
            mask.assign(m)
            threshold.assign(t)
        self.apply_masks()

    def decision_scores(self) -> list:
        """Per pruned weight, the magnitudes its pruning decisions are taken on (|w|, pooled per block)."""
        return [self._scores(getattr(self.layer, attr).numpy() * mask.numpy()) for attr, mask, _ in self.pruning_vars]

    def apply_threshold(self, t):
        """Masks that keep every decision scoring >= t (a threshold shared with other wrappers)."""
        for (attr, mask, threshold), scores in zip(self.pruning_vars, self.decision_scores()):
            mask.assign(self._spread((scores >= t).astype(np.float32), tuple(mask.shape)))
            threshold.assign(t)
        self.apply_masks()

    def _block(self, shape) -> tuple:
        return M.resolve_block(self.block_size, shape, self._who)

    def _scores(self, w: np.ndarray) -> np.ndarray:
        if self.block_size == (1, 1):
            return np.abs(w).astype(np.float32)
        return M.block_scores(w, self._block(w.shape), self.block_pooling_type)

    def _spread(self, keep: np.ndarray, shape) -> np.ndarray:
        return keep if self.block_size == (1, 1) else M.expand_blocks(keep, self._block(shape), shape)

    def apply_masks(self):
        """weight = weight * mask (TF-MOT's weight_mask_op)."""
        for attr, mask, _ in self.pruning_vars:
            weight = getattr(self.layer, attr)
            weight.assign(weight.numpy() * mask.numpy())

    # -- the call: the wrapped layer with masked weights ---------------------------------------
    def call(self, inputs, training=None, **kwargs):
        from .. import ops
        if training and int(self.pruning_step.value_array) < 0:     # (value_array: readable while kc.function traces)
            raise ValueError(f"layer '{self.name}': {CALLBACK_ERROR}")
        masked = {attr: ops.multiply(getattr(self.layer, attr), mask) for attr, mask, _ in self.pruning_vars}
        with _substituted(self.layer, masked):
            return self.layer(inputs, training=training, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    # -- config ---------------------------------------------------------------------------------
    def get_config(self) -> dict:
        from ..config_tree import serialize_layer
        return {**super().get_config(), "layer": serialize_layer(self.layer),
                "pruning_schedule": self.pruning_schedule.get_config(), "block_size": list(self.block_size),
                "block_pooling_type": self.block_pooling_type,
                "sparsity_m_by_n": list(self.sparsity_m_by_n) if self.sparsity_m_by_n else None,
                "threshold_group": self.threshold_group}

    @classmethod
    def from_config(cls, config):
        from ..config_tree import deserialize_layer
        config = dict(config)
        layer = deserialize_layer(config.pop("layer"), {})
        config.pop("batch_input_shape", None)
        return cls(layer, **config)


@contextlib.contextmanager
def _substituted(layer, values: dict):
    """Give `layer` other tensors under some attribute names for the duration of one call."""
    saved = {k: getattr(layer, k) for k in values}
    try:
        for k, v in values.items():
            object.__setattr__(layer, k, v)
        yield
    finally:
        for k, v in saved.items():
            object.__setattr__(layer, k, v)


def collect_prunable_layers(model) -> list:
    """Every PruneLowMagnitude in the model, nested models included."""
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, PruneLowMagnitude):
            found.append(layer)
        elif getattr(layer, "layers", None):
            found += collect_prunable_layers(layer)
    return found
