"""Keras 3's masking protocol: a tensor may carry `_keras_mask` (a bool tensor or None).

Layer.__call__ fills the `mask=` argument of a layer's call from the mask its only tensor argument
carries (or `<arg>_mask` for each of several tensor arguments, e.g. an attention layer's
`query_mask`), and, for a layer that supports masking, attaches `compute_mask(inputs, previous_mask)`
to the outputs that do not carry one yet, as keras/src/layers/layer.py does. Eager, traced and
symbolic (functional) tensors all carry masks; a functional model replays its layers on traced
tensors, so masks are recomputed along the trace and the symbolic ones only describe them.
"""
from __future__ import annotations

import inspect

from .. import ops
from ..tensor import KTensor
from .nodes import flatten, map_structure

MASK_ATTR = "_keras_mask"


def get_mask(t):
    return getattr(t, MASK_ATTR, None) if isinstance(t, KTensor) else None


def set_mask(t, mask):
    if isinstance(t, KTensor):
        setattr(t, MASK_ATTR, mask)


def _bound_tensor_arguments(layer, args, kwargs) -> tuple:
    """(parameter names of call, {name: value} of the arguments holding tensors), as Keras's CallSpec."""
    try:
        sig = inspect.signature(layer.call)
        bound = sig.bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        return (), {}
    tensors = {k: v for k, v in bound.items()
               if any(isinstance(t, KTensor) for t in flatten(v)) and k not in ("training",)}
    return tuple(sig.parameters), tensors


def fill_mask_arguments(layer, args, kwargs) -> tuple:
    """kwargs with the mask argument(s) filled from the inputs' masks; and the previous mask."""
    names, tensors = _bound_tensor_arguments(layer, args, kwargs)
    kwargs = dict(kwargs)
    if len(tensors) == 1 and "mask" in names and kwargs.get("mask") is None:
        only = next(iter(tensors.values()))
        mask = map_structure(get_mask, only)
        if any(m is not None for m in flatten(mask)):
            kwargs["mask"] = mask
    elif len(tensors) > 1:
        for name, value in tensors.items():
            if f"{name}_mask" in names and kwargs.get(f"{name}_mask") is None:
                mask = map_structure(get_mask, value)
                if any(m is not None for m in flatten(mask)):
                    kwargs[f"{name}_mask"] = mask
    if kwargs.get("mask") is not None:
        previous = kwargs["mask"]
    else:
        previous = map_structure(get_mask, args[0]) if args else None
    if previous is not None and not any(m is not None for m in flatten(previous)):
        previous = None
    return kwargs, previous


def attach_output_masks(layer, inputs, outputs, previous_mask):
    """Keras's _set_mask_metadata: output masks from compute_mask, on outputs that have none."""
    if not layer.supports_masking:
        return
    flat = [t for t in flatten(outputs)]
    if all(get_mask(t) is not None for t in flat if isinstance(t, KTensor)):
        return
    masks = layer.compute_mask(inputs, previous_mask)
    if masks is None:
        return
    for t, m in zip(flat, flatten(masks)):
        if isinstance(t, KTensor) and get_mask(t) is None and m is not None:
            set_mask(t, m)


def check_mask(layer, mask, x, leading: int):
    """A mask for x must be bool-like with x's first `leading` dims: a clear error naming the layer."""
    if mask is None:
        return None
    mask = mask if isinstance(mask, KTensor) else ops.convert_to_tensor(mask)
    want = x.shape[:leading]
    if mask.ndim != leading or any(a is not None and b is not None and a != b for a, b in zip(mask.shape, want)):
        raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) got a mask of shape {mask.shape}, "
                         f"expected shape {want} for inputs of shape {x.shape}")
    return mask if mask.dtype == "bool" else ops.not_equal(mask, 0)


def any_true(x, axis=-1, keepdims=False):
    """ops.any over one axis (as a max of 0/1 floats: the IR has no boolean reduction)."""
    return ops.greater(ops.max(ops.cast(x, "float32"), axis=axis, keepdims=keepdims), 0.0)
