"""shrink(model): remove the neurons and filters whose weights are all zero and rewire the next layer.

A Dense/Conv1D/Conv2D unit j whose kernel column kernel[..., j] is all zero outputs a constant
c_j = activation(bias_j). Removing it, the next weighted layer loses the matching inputs and adds
what they contributed to its bias (c_j times the sum of their weights), so the smaller dense model
computes the same outputs. Between the two layers the chain may hold elementwise activations,
Dropout (identity at inference), pooling and one Flatten (channels-last: input row = s * C + j);
the next layer is a Dense, or a Conv whose padding is 'valid' (with 'same' padding the zero
border breaks a constant channel, so it is accepted only where every removed c_j is 0).
"""
from __future__ import annotations

import numpy as np

from ..layers import (ELU, Activation, AveragePooling1D, AveragePooling2D, Conv1D, Conv2D, Dense, Dropout, Flatten,
                      GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D,
                      LeakyReLU, MaxPooling1D, MaxPooling2D, ReLU)
from ..layers.nodes import LayerNode
from ..tensor import convert_to_tensor
from .rebuild import rebuild
from .wrapper import PruneLowMagnitude

SHRINKABLE = (Dense, Conv1D, Conv2D)
ELEMENTWISE = (Activation, ReLU, LeakyReLU, ELU)            # c -> f(c), channel by channel
CONSTANT_PRESERVING = (Dropout, MaxPooling1D, MaxPooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
                       GlobalMaxPooling1D, GlobalMaxPooling2D)
NOT_ELEMENTWISE = ("softmax", "log_softmax")


def shrink(model):
    """A new, smaller model with the same outputs (inference mode); the input model is unchanged."""
    from ..models import Sequential
    graph = model._require_built() if isinstance(model, Sequential) else model
    if any(isinstance(layer, PruneLowMagnitude) for layer in model.layers):
        raise ValueError(f"shrink: model '{model.name}' still has pruning wrappers; call strip_pruning first")
    weights = {id(layer): layer.get_weights() for layer in model.layers}
    widths = {}                                     # id(layer) -> units/filters left
    for node in _layer_nodes(graph):
        if isinstance(node.layer, SHRINKABLE):
            _shrink_layer(graph, node, weights, widths)
    clones = {}

    def clone(layer):
        config = layer.get_config()
        if id(layer) in widths:
            config["units" if isinstance(layer, Dense) else "filters"] = widths[id(layer)]
        clones[id(layer)] = (layer, type(layer).from_config(config))
        return clones[id(layer)][1]
    new = rebuild(model, clone, "shrink")
    for old, layer in clones.values():
        layer.set_weights(weights.get(id(old), old.get_weights()))
    return new


def _layer_nodes(graph) -> list:
    return [n for n in graph._nodes if isinstance(n, LayerNode)]


def _shrink_layer(graph, node, weights, widths):
    layer = node.layer
    kernel = weights[id(layer)][0]
    zero = np.flatnonzero(~np.any(kernel.reshape(-1, kernel.shape[-1]), axis=0))
    if zero.size == 0 or _is_output(graph, node.outputs[0]):
        return
    if zero.size == kernel.shape[-1]:
        zero = zero[1:]                                 # keep one unit: no zero-sized tensors
    who = f"shrink: layer '{layer.name}' ({type(layer).__name__}) has {zero.size} all-zero units"
    _check_single_use(graph, layer, who)
    if getattr(layer, "groups", 1) != 1 or _activation_name(layer) in NOT_ELEMENTWISE:
        raise ValueError(f"{who}, but it cannot lose units (groups={getattr(layer, 'groups', 1)}, "
                         f"activation {_activation_name(layer)!r} mixes units)")
    bias = weights[id(layer)][1] if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
    const = _eager(layer.activation, bias[zero])
    nxt, const, spatial = _follow_chain(graph, node.outputs[0], const, who)
    keep = np.setdiff1d(np.arange(kernel.shape[-1]), zero)
    weights[id(layer)] = [kernel[..., keep]] + ([bias[keep]] if layer.use_bias else [])
    _rewire_next(nxt, weights, keep, zero, const, spatial, kernel.shape[-1], who)
    widths[id(layer)] = len(keep)


def _follow_chain(graph, tensor, const, who):
    """The next weighted layer after `tensor`, the removed units' constants there, and the Flatten size."""
    spatial = None
    while True:
        consumers = _consumers(graph, tensor)
        if len(consumers) != 1 or not isinstance(consumers[0], LayerNode):
            names = [getattr(c, "name", "?") for c in consumers]
            raise ValueError(f"{who}, but its output feeds {names}: shrink can only rewire a single next layer")
        node = consumers[0]
        layer = node.layer
        if isinstance(layer, SHRINKABLE):
            _check_single_use(graph, layer, who)
            return layer, const, spatial
        if isinstance(layer, ELEMENTWISE) and _activation_name(layer) not in NOT_ELEMENTWISE:
            const = _eager(layer, const)
        elif isinstance(layer, Flatten) and spatial is None and len(tensor.shape) > 2:
            spatial = int(np.prod(tensor.shape[1:-1]))
        elif isinstance(layer, CONSTANT_PRESERVING) or (
                isinstance(layer, (AveragePooling1D, AveragePooling2D)) and (layer.padding == "valid" or not
                                                                              np.any(const))):
            pass
        else:
            raise ValueError(f"{who}, but the next layer '{layer.name}' ({type(layer).__name__}) cannot be rewired")
        if _is_output(graph, node.outputs[0]):
            raise ValueError(f"{who}, but its units reach the model output through '{layer.name}'")
        tensor = node.outputs[0]


def _rewire_next(nxt, weights, keep, zero, const, spatial, width, who):
    kernel, *rest = weights[id(nxt)]
    bias = rest[0] if nxt.use_bias else None
    if isinstance(nxt, Dense) and spatial is not None:
        blocks = kernel.reshape(spatial, width, kernel.shape[-1])
        folded = const @ blocks[:, zero].sum(axis=0)
        kernel = blocks[:, keep].reshape(spatial * len(keep), kernel.shape[-1])
    else:
        folded = const @ kernel[..., zero, :].reshape(-1, zero.size, kernel.shape[-1]).sum(axis=0)
        if not isinstance(nxt, Dense) and nxt.padding != "valid" and np.any(const):
            raise ValueError(f"{who}, whose constant outputs cannot be folded into '{nxt.name}' "
                             f"({type(nxt).__name__}, padding={nxt.padding!r}): only padding='valid' keeps them exact")
        kernel = kernel[..., keep, :]
    if np.any(folded) and bias is None:
        raise ValueError(f"{who}, whose constant outputs need a bias in '{nxt.name}', which has use_bias=False")
    weights[id(nxt)] = [kernel] + ([] if bias is None else [(bias + folded).astype(np.float32)])


def _consumers(graph, tensor) -> list:
    return [n for n in graph._nodes if any(t is tensor for t in n.symbolic_inputs())]


def _is_output(graph, tensor) -> bool:
    return any(t is tensor for t in graph._output_tensors)


def _check_single_use(graph, layer, who):
    if sum(isinstance(n, LayerNode) and n.layer is layer for n in graph._nodes) != 1:
        raise ValueError(f"{who}, but layer '{layer.name}' is shared by several calls and cannot be rewired")


def _activation_name(layer):
    from .. import activations
    fn = getattr(layer, "activation", None)
    return activations.serialize(fn) if fn is not None else None


def _eager(fn, values: np.ndarray) -> np.ndarray:
    return np.asarray(fn(convert_to_tensor(values.astype(np.float32)[None])).numpy())[0]
