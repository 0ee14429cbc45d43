"""prune_low_magnitude and strip_pruning: TF-MOT's entry points (prune.py) on kcompile models."""
from __future__ import annotations

import warnings

from ..layers.base import Layer
from ..layers.input_layer import InputLayer
from ..layers.normalization import BatchNormalization, LayerNormalization
from .rebuild import rebuild
from .schedules import ConstantSparsity
from .wrapper import PruneLowMagnitude, collect_prunable_layers, is_prunable, supported_names

# layers with weights that are left as they are when a whole model is pruned (TF-MOT: no prunable weights)
NOT_PRUNED = (BatchNormalization, LayerNormalization)


def prune_low_magnitude(to_prune, pruning_schedule=None, block_size=(1, 1), block_pooling_type="AVG",
                        sparsity_m_by_n=None, threshold_scope="layer", **kwargs):
    """Wrap a layer, a list of layers, or every prunable layer of a Sequential/functional model.

    threshold_scope (a kcompile extension): "layer" (TF-MOT) gives every weight the schedule's
    sparsity; "global" ranks the magnitudes of all the weights this call wraps together, under one
    threshold, so the schedule's sparsity holds for them as a whole and each layer gets its own
    (global magnitude pruning, as torch.nn.utils.prune.global_unstructured).

    A model's layers are reused (their weights are shared with the model passed in): load weights
    first, then prune. Weightless layers and normalization layers are kept; any other layer with
    weights that cannot be pruned is refused, naming it.
    """
    from ..models import Model
    if threshold_scope not in ("layer", "global"):
        raise ValueError(f"prune_low_magnitude: threshold_scope must be 'layer' or 'global', got {threshold_scope!r}")
    first = to_prune[0] if isinstance(to_prune, list) and to_prune else to_prune
    group = None if threshold_scope == "layer" else f"global:{getattr(first, 'name', 'layers')}"
    params = {"pruning_schedule": pruning_schedule or ConstantSparsity(0.5, 0), "block_size": block_size,
              "block_pooling_type": block_pooling_type, "sparsity_m_by_n": sparsity_m_by_n,
              "threshold_group": group}

    def wrap(layer):
        if isinstance(layer, (PruneLowMagnitude, InputLayer)):
            return layer
        if not is_prunable(layer) and (not layer.weights or isinstance(layer, NOT_PRUNED)):
            return layer
        return PruneLowMagnitude(layer, **params)

    if kwargs and not (isinstance(to_prune, Layer) and not isinstance(to_prune, Model)):
        # TF-MOT passes extra keywords to a single layer's wrapper and ignores them otherwise
        raise TypeError(f"prune_low_magnitude: keyword argument(s) {sorted(kwargs)} are only accepted when "
                        "wrapping a single layer (pruning_policy is not supported)")
    if isinstance(to_prune, list):
        return [layer if isinstance(layer, PruneLowMagnitude) else PruneLowMagnitude(layer, **params)
                for layer in to_prune]
    if isinstance(to_prune, Model):
        return rebuild(to_prune, wrap, "prune_low_magnitude")
    if isinstance(to_prune, Layer):
        return PruneLowMagnitude(to_prune, **params, **kwargs)
    raise ValueError("prune_low_magnitude can only prune a Sequential or functional model, a layer or a list "
                     f"of layers; got {type(to_prune).__name__} (supported layers: {supported_names()})")


def strip_pruning(model):
    """The model without pruning wrappers; the pruned weights hold their zeros (weight * mask)."""
    from ..models import Model
    if not isinstance(model, Model):
        raise ValueError(f"strip_pruning expects a kcompile Model, got {type(model).__name__}")
    if not collect_prunable_layers(model):
        warnings.warn(f"strip_pruning: model '{model.name}' has no pruning wrappers; it is returned unchanged",
                      stacklevel=2)
        return model

    def unwrap(layer):
        if not isinstance(layer, PruneLowMagnitude):
            return layer
        layer.apply_masks()
        inner = layer.layer
        if inner._batch_input_shape is None:
            inner._batch_input_shape = layer._batch_input_shape
        return inner
    return rebuild(model, unwrap, "strip_pruning")
