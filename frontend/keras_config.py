"""Model configs in Keras 3's own .keras JSON (config.json) <-> kcompile models; nothing in a file is executed.

Keras wraps every object as {"module", "class_name", "config", "registered_name"}, spells dtypes as
DTypePolicy objects, and records a functional graph as each layer's "inbound_nodes" whose arguments are
"__keras_tensor__" references [layer name, node index, tensor index]. kcompile's layer configs use
Keras's argument names, so a layer converts by rewrapping; Keras options kcompile lacks are dropped only
where their value changes nothing (HARMLESS), anything else is refused naming the layer and option.
"""
from __future__ import annotations

import inspect

from .layers.nodes import LayerNode, flatten

# Keras-only options and the values at which kcompile computes the same thing (ANY: never changes results
# for what kcompile supports, e.g. mask options with no masking).
ANY = object()
HARMLESS = {"quantization_config": (None,), "optional": (False,), "ragged": (False,), "sparse": (False, None),
            "synchronized": (False,), "renorm": (False,), "renorm_clipping": (None,), "renorm_momentum": ANY,
            "zero_output_for_mask": ANY, "use_cudnn": ANY, "rms_scaling": (False,), "lora_rank": (None,),
            "lora_alpha": (None,), "data_format": ("channels_last", None), "interpolation": ("nearest",),
            "input_axes": (None,), "output_axes": (None,), "shared_object_id": ANY}
# kcompile layers that Keras has but that carry code or state Keras cannot take from a config
NOT_EXPORTABLE = {"Lambda": "it holds Python code", "Layer": "it is the abstract base class"}
_OBJECT_MODULES = {"_initializer": "keras.initializers", "_regularizer": "keras.regularizers",
                   "_constraint": "keras.constraints"}
FUNCTIONAL_MODULE = "keras.src.models.functional"
# 1-D layers whose option kcompile keeps as a list of one per-axis entry and Keras as that entry alone
_ONE_AXIS = {"Cropping1D": "cropping", "ZeroPadding1D": "padding", "UpSampling1D": "size"}


class KerasFormatError(ValueError):
    """A model or file that cannot be expressed in (or read from) Keras 3's .keras format."""


# -- kcompile -> Keras -----------------------------------------------------------------------
def model_to_keras(model) -> dict:
    """The {"module", "class_name", "config", ...} tree Keras 3's deserialize_keras_object rebuilds."""
    from .models import Functional, Sequential
    if getattr(model, "_quantization", None):
        raise KerasFormatError(f"model '{model.name}' is quantized by kcompile (int8 weights); Keras cannot "
                               "load it: export the float model, or save with format='kcompile'")
    if isinstance(model, Sequential):
        shape = list(model.input_shape)
        config = {"name": model.name, "trainable": model.trainable, "dtype": _policy("float32"),
                  "layers": [layer_to_keras(model._input_layer)] + [layer_to_keras(x) for x in model.layers],
                  "build_input_shape": shape}
        return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None,
                "build_config": {"input_shape": shape}}
    if isinstance(model, Functional):
        return {"module": FUNCTIONAL_MODULE, "class_name": "Functional", "config": _functional_to_keras(model),
                "registered_name": "Functional", "build_config": {"input_shape": None}}
    raise KerasFormatError(f"model '{model.name}' is a subclassed {type(model).__name__}: only Sequential and "
                           "functional models can be written in the Keras format")


def layer_to_keras(layer) -> dict:
    from .layers import BUILTIN_LAYERS
    from .models import Model
    if isinstance(layer, Model):
        return model_to_keras(layer)
    name = type(layer).__name__
    if BUILTIN_LAYERS.get(name) is not type(layer) or name in NOT_EXPORTABLE:
        why = NOT_EXPORTABLE.get(name, "it is not a built-in layer Keras also has (a custom or kcompile-only class)")
        raise KerasFormatError(f"layer '{layer.name}' ({name}) cannot be written in the Keras format: {why}")
    config = {k: _object_to_keras(k, v) for k, v in layer.get_config().items()}
    if name in _ONE_AXIS:
        config[_ONE_AXIS[name]] = config[_ONE_AXIS[name]][0]
    if "dtype" in config:
        config["dtype"] = config["dtype"] if name == "InputLayer" else _policy(config["dtype"])
    return {"module": "keras.layers", "class_name": name, "config": config, "registered_name": None}


def _policy(dtype) -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype or "float32"},
            "registered_name": None}


def _object_to_keras(key, value):
    if isinstance(value, dict) and "class_name" in value:
        module = next((m for suffix, m in _OBJECT_MODULES.items() if key.endswith(suffix)), None)
        if module is None:
            raise KerasFormatError(f"option '{key}' holds a {value['class_name']} object, which the Keras "
                                   "format writer does not know")
        return {"module": module, "class_name": value["class_name"], "config": value.get("config", {}),
                "registered_name": None}
    return value


def _functional_to_keras(model) -> dict:
    from .layers.input_layer import InputLayer
    node_index, inbound = {}, {id(layer): [] for layer in model.layers}
    for node in model._nodes:
        if not isinstance(node, LayerNode):
            raise KerasFormatError(f"model '{model.name}' applies op '{node.op_name}' outside a layer; the Keras "
                                   "format writer supports layer calls only (wrap it in a layer)")
        node_index[id(node)] = len(inbound[id(node.layer)])
        inbound[id(node.layer)].append({"args": _tensors_to_keras(list(node.args), node_index),
                                        "kwargs": _tensors_to_keras(node.kwargs, node_index)})
    layers = []
    for layer in model.layers:
        tree = layer_to_keras(layer)
        tree.update(name=layer.name, inbound_nodes=[] if isinstance(layer, InputLayer) else inbound[id(layer)])
        layers.append(tree)
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": _history_struct(model._inputs_struct, node_index),
            "output_layers": _history_struct(model._outputs_struct, node_index)}


def _history(t, node_index) -> list:
    node, index = t._keras_history
    return [node.layer.name, node_index.get(id(node), 0), index]


def _history_struct(struct, node_index):
    if isinstance(struct, (list, tuple)):
        return [_history_struct(s, node_index) for s in struct]
    if isinstance(struct, dict):
        return {k: _history_struct(v, node_index) for k, v in struct.items()}
    return _history(struct, node_index)


def _tensors_to_keras(x, node_index):
    from .tensor import KTensor
    if isinstance(x, KTensor):
        if not x.is_symbolic:
            raise KerasFormatError("a layer is called on a constant tensor; the Keras format writer supports "
                                   "symbolic tensors and plain values only")
        return {"class_name": "__keras_tensor__", "config": {"shape": list(x.shape), "dtype": x.dtype,
                                                              "keras_history": _history(x, node_index)}}
    if isinstance(x, (list, tuple)):
        return [_tensors_to_keras(v, node_index) for v in x]
    if isinstance(x, dict):
        return {k: _tensors_to_keras(v, node_index) for k, v in x.items()}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise KerasFormatError(f"a layer call argument of type {type(x).__name__} has no Keras-format form")


# -- Keras -> kcompile -----------------------------------------------------------------------
def model_from_keras(tree: dict, custom_objects: dict):
    """A kcompile model from a Keras 3 config.json tree (Sequential, Functional, nested models)."""
    if not isinstance(tree, dict) or not isinstance(tree.get("config"), dict):
        raise KerasFormatError(f"malformed Keras model config: {str(tree)[:120]}")
    name = tree.get("class_name")
    if name == "Sequential":
        return _sequential_from_keras(tree["config"], custom_objects)
    if name in ("Functional", "Model") and "layers" in tree["config"]:
        return _functional_from_keras(tree["config"], custom_objects)
    raise KerasFormatError(f"the file holds a {name!r} model; kcompile reads Keras Sequential and functional "
                           "models (a subclassed model's code is not in the file)")


def layer_from_keras(tree: dict, custom_objects: dict):
    from .layers import BUILTIN_LAYERS
    from .saving import get_registered
    if not isinstance(tree, dict) or "class_name" not in tree:
        raise KerasFormatError(f"malformed Keras layer config: {str(tree)[:120]}")
    name, config = tree["class_name"], tree.get("config") or {}
    where = f"layer '{config.get('name', '?')}' ({name})"
    if name in ("Sequential", "Functional", "Model"):
        return model_from_keras(tree, custom_objects)
    if name == "Lambda":
        raise KerasFormatError(f"{where}: a Lambda layer holds Python code; kcompile never runs code from a "
                               "file (rebuild the model in Python and load its weights)")
    registered = tree.get("registered_name")
    custom = registered not in (None, name) or not str(tree.get("module") or "keras").startswith("keras")
    cls = get_registered(registered or name, custom_objects) if custom else BUILTIN_LAYERS.get(name)
    if cls is None:
        what = f"custom class '{registered or name}' is not registered" if custom else \
            "this layer class is not supported by kcompile"
        raise KerasFormatError(f"{where}: {what}")
    try:
        return cls.from_config(_config_from_keras(cls, config, where) if not custom else _strip(config))
    except KerasFormatError:
        raise
    except (TypeError, ValueError, NotImplementedError, KeyError) as e:
        raise KerasFormatError(f"{where}: cannot be built by kcompile: {e}") from None


def _config_from_keras(cls, config: dict, where: str) -> dict:
    accepted, out = _accepted(cls), {}
    for key, value in config.items():
        value = _strip(value)
        if key == "dtype" and isinstance(value, dict):
            value = value.get("config", {}).get("name", "float32")
        if key in accepted:
            out[key] = value
            continue
        allowed = HARMLESS.get(key)
        if allowed is ANY or (allowed is not None and value in allowed):
            continue
        raise KerasFormatError(f"{where}: Keras option {key}={value!r} is not supported by kcompile")
    return out


def _accepted(cls) -> set:
    """Keyword arguments cls(...) takes, following **kwargs up to the base Layer."""
    names = {"input_shape", "input_dim", "batch_size", "input_length"}
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names - {"self"}


def _strip(value):
    """Keras's object wrappers down to kcompile's {"class_name", "config"}, dropping harmless Keras options."""
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "class_name" in value and isinstance(value.get("config"), dict):
        if value["class_name"] == "DTypePolicy":
            return value["config"].get("name", "float32")
        config = {k: _strip(v) for k, v in (value["config"] or {}).items()
                  if not (k in HARMLESS and (HARMLESS[k] is ANY or v in HARMLESS[k]))}
        return {"class_name": value["class_name"], "config": config}
    return {k: _strip(v) for k, v in value.items() if k != "shared_object_id"}


def _sequential_from_keras(config: dict, custom_objects: dict):
    from .models import Sequential
    model = Sequential(name=config.get("name"), trainable=config.get("trainable", True))
    for tree in config["layers"]:
        model.add(layer_from_keras(tree, custom_objects))
    if model._functional is None and config.get("build_input_shape"):
        model.build(tuple(config["build_input_shape"]))
    return model


def _functional_from_keras(config: dict, custom_objects: dict):
    from .layers.input_layer import InputLayer
    from .models import Functional
    layers, pending, made = {}, [], {}     # made: (layer name, node index) -> flat output tensors
    for tree in config["layers"]:
        layer = layer_from_keras(tree, custom_objects)
        name = tree.get("name") or layer.name
        layers[name] = layer
        if isinstance(layer, InputLayer):
            made[(name, 0)] = [layer.output]
        pending += [(name, i, node) for i, node in enumerate(tree.get("inbound_nodes") or [])]
    while pending:     # Keras lists layers in an order whose nodes may need later layers' outputs
        ready = [p for p in pending if _inputs_ready(p[2], made)]
        if not ready:
            raise KerasFormatError(f"the functional graph of '{config.get('name')}' cannot be resolved (a node "
                                   f"refers to a missing layer output): {[p[0] for p in pending][:5]}")
        for name, index, node in ready:
            args = _tensors_from_keras(node.get("args", []), made)
            kwargs = {k: v for k, v in _tensors_from_keras(node.get("kwargs", {}), made).items()
                      if v is not None}      # Keras records defaults such as mask=None
            made[(name, index)] = [t for t in flatten(layers[name](*args, **kwargs))]
            pending.remove((name, index, node))
    inputs = _tensor_struct(config["input_layers"], made)
    outputs = _tensor_struct(config["output_layers"], made)
    return Functional(inputs, outputs, name=config.get("name"), trainable=config.get("trainable", True))


def _is_history(x) -> bool:
    return isinstance(x, list) and len(x) == 3 and isinstance(x[0], str) and all(isinstance(i, int) for i in x[1:])


def _tensor_struct(x, made):
    if _is_history(x):
        return _lookup(x, made)
    if isinstance(x, list):
        return [_tensor_struct(v, made) for v in x]
    if isinstance(x, dict):
        return {k: _tensor_struct(v, made) for k, v in x.items()}
    raise KerasFormatError(f"malformed model inputs/outputs entry {x!r}")


def _lookup(history, made):
    name, node, index = history
    if (name, node) not in made or index >= len(made[(name, node)]):
        raise KerasFormatError(f"the graph refers to output {index} of call {node} of layer '{name}', which "
                               "the file does not define")
    return made[(name, node)][index]


def _refs(x) -> list:
    if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
        return [x["config"]["keras_history"]]
    if isinstance(x, list):
        return [r for v in x for r in _refs(v)]
    if isinstance(x, dict):
        return [r for v in x.values() for r in _refs(v)]
    return []


def _inputs_ready(node, made) -> bool:
    if not isinstance(node, dict):
        raise KerasFormatError("this .keras file uses the legacy (Keras 2) inbound_nodes layout, which kcompile "
                               "does not read; re-save it with Keras 3")
    return all((r[0], r[1]) in made for r in _refs(node))


def _tensors_from_keras(x, made):
    if isinstance(x, dict) and x.get("class_name") == "__keras_tensor__":
        return _lookup(x["config"]["keras_history"], made)
    if isinstance(x, list):
        return [_tensors_from_keras(v, made) for v in x]
    if isinstance(x, dict):
        return {k: _tensors_from_keras(v, made) for k, v in x.items()}
    return x
