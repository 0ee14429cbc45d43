"""Layer and model configs as plain JSON trees (used by saving): serialize and rebuild."""
from __future__ import annotations

import numpy as np

from kcompile.ir import DType

from .layers.nodes import LayerNode, flatten
from .tensor import KTensor, apply, convert_to_tensor


def _builtin_layers() -> dict:
    from .layers import BUILTIN_LAYERS
    return BUILTIN_LAYERS


def class_name_of(obj) -> str:
    from .saving import registered_name
    cls = type(obj)
    name = registered_name(cls)
    if name is not None:
        return name
    if _builtin_layers().get(cls.__name__) is cls:
        return cls.__name__
    raise ValueError(f"cannot save layer '{getattr(obj, 'name', obj)}' of class {cls.__name__}: register it "
                     "with @kc.saving.register_keras_serializable() (and give it get_config)")


def serialize_layer(layer) -> dict:
    from .models import Functional, Model, Sequential
    if isinstance(layer, Sequential):
        return {"class_name": "Sequential", "config": sequential_config(layer)}
    if isinstance(layer, Functional):
        return {"class_name": "Functional", "config": functional_config(layer)}
    out = {"class_name": class_name_of(layer), "config": layer.get_config()}
    if isinstance(layer, Model) and layer._input_specs is not None:
        out["input_specs"] = [[n, [None] + list(t.shape[1:]), t.dtype.name] for n, t in layer._input_specs]
    return out


def deserialize_layer(tree: dict, custom_objects: dict):
    from .saving import get_registered
    name = tree["class_name"]
    if name == "Sequential":
        return sequential_from_config(tree["config"], custom_objects)
    if name == "Functional":
        return functional_from_config(tree["config"], custom_objects)
    cls = get_registered(name, custom_objects) or _builtin_layers().get(name)
    if cls is None:
        raise ValueError(f"unknown layer class '{name}': register it with "
                         "@kc.saving.register_keras_serializable() or pass custom_objects")
    layer = cls.from_config(tree["config"])
    if tree.get("input_specs"):
        _build_subclassed(layer, tree["input_specs"])
    return layer


def _build_subclassed(model, specs):
    from .layers.input_layer import Input
    inputs = [Input(shape=tuple(shape[1:]), dtype=dt) for _, shape, dt in specs]
    model(inputs[0] if len(inputs) == 1 else inputs)


# -- Sequential ------------------------------------------------------------------------------
def sequential_config(model) -> dict:
    layers = ([serialize_layer(model._input_layer)] if model._input_layer is not None else [])
    layers += [serialize_layer(layer) for layer in model.layers]
    return {"name": model.name, "trainable": model.trainable, "layers": layers}


def sequential_from_config(config: dict, custom_objects: dict):
    from .models import Sequential
    model = Sequential(name=config["name"], trainable=config.get("trainable", True))
    for tree in config["layers"]:
        model.add(deserialize_layer(tree, custom_objects))
    return model


# -- Functional ------------------------------------------------------------------------------
def functional_config(model) -> dict:
    from .layers.input_layer import InputLayer
    node_ids = {id(n): i for i, n in enumerate(model._nodes)}
    input_ids = {id(t): i for i, t in enumerate(model._input_tensors)}

    def enc(x):
        return _encode(x, node_ids, input_ids)
    nodes = []
    for n in model._nodes:
        if isinstance(n, LayerNode):
            nodes.append({"layer": n.layer.name, "args": enc(list(n.args)), "kwargs": enc(n.kwargs)})
        else:
            nodes.append({"op": n.op_name, "inputs": enc(n.inputs), "attrs": enc(n.attrs)})
    inputs = []
    for t in model._input_tensors:
        layer = t._keras_history[0].layer if isinstance(t._keras_history[0], LayerNode) else None
        if not isinstance(layer, InputLayer):
            raise ValueError(f"model '{model.name}': only models whose inputs come from kc.Input can be saved")
        inputs.append(layer.name)
    return {"name": model.name, "trainable": model.trainable,
            "layers": [serialize_layer(layer) for layer in model.layers],
            "inputs": inputs, "nodes": nodes, "outputs": enc(model._outputs_struct)}


def _encode(x, node_ids, input_ids):
    from .variables import Variable
    if isinstance(x, KTensor):
        if id(x) in input_ids:
            return {"__input__": input_ids[id(x)]}
        if x.is_symbolic:
            node, index = x._keras_history
            return {"__tensor__": [node_ids[id(node)], index]}
        if isinstance(x, Variable):
            raise ValueError(f"a functional model that uses variable '{x.path}' outside a layer cannot be saved")
        return {"__array__": x.numpy().tolist(), "dtype": x.dtype}
    if isinstance(x, DType):
        return {"__dtype__": x.name}
    if isinstance(x, np.ndarray):
        return {"__array__": x.tolist(), "dtype": str(x.dtype)}
    if isinstance(x, tuple):
        return {"__tuple__": [_encode(v, node_ids, input_ids) for v in x]}
    if isinstance(x, list):
        return [_encode(v, node_ids, input_ids) for v in x]
    if isinstance(x, dict):
        return {str(k): _encode(v, node_ids, input_ids) for k, v in x.items()}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, (np.integer, np.floating, np.bool_)):
        return x.item()
    raise ValueError(f"cannot save a functional-graph argument of type {type(x).__name__}")


def _reference(i, count: int, what: str) -> int:
    """A tensor reference of a functional config, checked: a config names only what comes before it."""
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count:
        raise ValueError(f"malformed functional config: a tensor refers to {what} {i!r}, but there are {count}")
    return i


def _decode(x, node_outputs, inputs):
    if isinstance(x, list):
        return [_decode(v, node_outputs, inputs) for v in x]
    if not isinstance(x, dict):
        return x
    if "__input__" in x:
        return inputs[_reference(x["__input__"], len(inputs), "input")]
    if "__tensor__" in x:
        node, index = x["__tensor__"]
        outputs = node_outputs[_reference(node, len(node_outputs), "earlier node")]
        return outputs[_reference(index, len(outputs), f"output of node {node}")]
    if "__array__" in x:
        return convert_to_tensor(np.asarray(x["__array__"], dtype=x["dtype"]))
    if "__dtype__" in x:
        return x["__dtype__"]
    if "__tuple__" in x:
        return tuple(_decode(v, node_outputs, inputs) for v in x["__tuple__"])
    return {k: _decode(v, node_outputs, inputs) for k, v in x.items()}


def functional_from_config(config: dict, custom_objects: dict):
    from .models import Functional
    layers = {}
    for tree in config["layers"]:
        layer = deserialize_layer(tree, custom_objects)
        layers[layer.name] = layer
    inputs = [layers[name].output for name in config["inputs"]]
    node_outputs = []
    for node in config["nodes"]:
        if "layer" in node:
            args = _decode(node["args"], node_outputs, inputs)
            out = layers[node["layer"]](*args, **_decode(node["kwargs"], node_outputs, inputs))
        else:
            out = apply(node["op"], *_decode(node["inputs"], node_outputs, inputs),
                        **_decode(node["attrs"], node_outputs, inputs))
        node_outputs.append([t for t in flatten(out) if isinstance(t, KTensor)])
    outputs = _decode(config["outputs"], node_outputs, inputs)
    return Functional(inputs[0] if len(inputs) == 1 else inputs, outputs, name=config["name"],
                      trainable=config.get("trainable", True))
