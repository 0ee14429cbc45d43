"""rebuild(model, fn): the same Sequential or functional graph with every layer replaced by fn(layer).

Used by prune_low_magnitude (wrap), strip_pruning (unwrap) and shrink (smaller copies), as TF-MOT
uses keras.models.clone_model(clone_function=...). A layer used at several nodes is mapped once,
so it stays shared; nested Sequential/functional models are rebuilt recursively.
"""
from __future__ import annotations

from ..layers.input_layer import InputLayer
from ..layers.nodes import LayerNode, flatten, map_structure
from ..tensor import KTensor, OpNode, apply


def rebuild(model, fn, what: str):
    """A new model of the same structure; `fn(layer)` returns the layer to use in place of `layer`."""
    from ..models import Functional, Sequential
    mapped: dict = {}

    def convert(layer):
        if id(layer) not in mapped:
            if isinstance(layer, (Sequential, Functional)):
                mapped[id(layer)] = rebuild(layer, fn, what)
            else:
                mapped[id(layer)] = fn(layer)
        return mapped[id(layer)]

    if isinstance(model, Sequential):
        new = Sequential(name=model.name, trainable=model.trainable)
        if model._input_layer is not None:
            new.add(InputLayer.from_config(model._input_layer.get_config()))
        for layer in model.layers:
            new.add(convert(layer))
        return new
    if isinstance(model, Functional):
        return _rebuild_functional(model, convert)
    raise ValueError(f"{what}: model '{model.name}' is a subclassed model; only Sequential and functional "
                     "models are supported")


def _rebuild_functional(model, convert):
    from ..models import Functional
    env = {}
    new_inputs = []
    for t in model._input_tensors:
        node = t._keras_history[0]
        clone = InputLayer.from_config(node.layer.get_config()).output
        env[id(t)] = clone
        new_inputs.append(clone)

    def sub(x):
        return env[id(x)] if isinstance(x, KTensor) and x.is_symbolic else x
    for node in model._nodes:
        if isinstance(node, LayerNode):
            outs = convert(node.layer)(*map_structure(sub, node.args), **map_structure(sub, node.kwargs))
            outs = [t for t in flatten(outs) if isinstance(t, KTensor)]
        elif isinstance(node, OpNode):
            out = apply(node.op_name, *[sub(t) for t in node.inputs], **node.attrs)
            outs = list(out) if isinstance(out, tuple) else [out]
        else:
            raise ValueError(f"model '{model.name}': cannot rebuild node {node!r}")
        for old, new in zip(node.outputs, outs):
            env[id(old)] = new
    inputs = map_structure(sub, model._inputs_struct)
    return Functional(inputs, map_structure(sub, model._outputs_struct), name=model.name,
                      trainable=model.trainable)
