"""A model's compile state as plain JSON plus arrays: what `save` writes so that `load_model` compiles the
model again and further `fit` continues exactly, as Keras 3 restores it.

The compile config holds the optimizer ({"class_name", "config"}), the loss(es), loss weights, metrics and
weighted metrics. A loss or metric is a name, a {"class_name", "config"} of a built-in class, or a
{"registered_name"} of a function/class registered with `register_keras_serializable`; anything else (an
unregistered function) makes the compile config unsavable, and the model is then saved uncompiled with a
warning, as Keras does. The training state is the optimizer's step count, its slot arrays (by position among
the trainable variables, since layer paths may be renumbered on load) and the dropout RNG counter.
"""
from __future__ import annotations

import warnings

import numpy as np

from kcompile.frontend import losses as losses_mod
from kcompile.frontend import metrics as metrics_mod
from kcompile.frontend import optimizers as optimizers_mod


class NotSerializable(ValueError):
    """A compile argument that has no JSON form (an unregistered function, a lambda)."""


# -- compile config --------------------------------------------------------------------------
def compile_config(model) -> dict | None:
    """The compile() arguments as JSON, or None when the model is not compiled or they cannot be saved."""
    c = getattr(model, "_compiled", None)
    if c is None:
        return None
    loss, loss_weights, metrics, weighted_metrics = c._spec
    try:
        return {"optimizer": serialize_optimizer(c.optimizer), "loss": _ser(loss, "loss"),
                "loss_weights": loss_weights, "metrics": _ser(metrics, "metric"),
                "weighted_metrics": _ser(weighted_metrics, "metric")}
    except NotSerializable as e:
        warnings.warn(f"model '{model.name}' is saved without its compile state: {e}", stacklevel=3)
        return None


def compile_from_config(model, config: dict, custom_objects=None):
    """compile() the model again with the saved arguments."""
    custom_objects = custom_objects or {}
    model.compile(optimizer=deserialize_optimizer(config["optimizer"]),
                  loss=_deser(config.get("loss"), "loss", custom_objects),
                  loss_weights=config.get("loss_weights"),
                  metrics=_deser(config.get("metrics"), "metric", custom_objects),
                  weighted_metrics=_deser(config.get("weighted_metrics"), "metric", custom_objects))


def serialize_optimizer(opt) -> dict:
    cls = type(opt)
    if optimizers_mod._BY_NAME.get(cls.__name__.lower()) is not cls:
        raise NotSerializable(f"optimizer class {cls.__name__} is not a built-in optimizer")
    return {"class_name": cls.__name__, "config": opt.get_config()}


def deserialize_optimizer(tree: dict):
    cls = optimizers_mod._BY_NAME.get(str(tree.get("class_name", "")).lower())
    if cls is None or not isinstance(tree.get("config"), dict):
        raise ValueError(f"unknown optimizer in the compile config: {tree.get('class_name')!r}; known: "
                         f"{sorted(c.__name__ for c in optimizers_mod._BY_NAME.values())}")
    return cls.from_config(tree["config"])


def _ser(spec, kind: str):
    if spec is None or isinstance(spec, (str, int, float, bool)):
        return spec
    if isinstance(spec, (list, tuple)):
        return [_ser(s, kind) for s in spec]
    if isinstance(spec, dict):
        return {str(k): _ser(v, kind) for k, v in spec.items()}
    from kcompile.frontend.saving import registered_name
    reg = registered_name(spec) or registered_name(type(spec))
    module, base = (losses_mod, losses_mod.Loss) if kind == "loss" else (metrics_mod, metrics_mod.Metric)
    if isinstance(spec, base) and getattr(module, type(spec).__name__, None) is type(spec):
        return {"class_name": type(spec).__name__, "config": spec.get_config()}
    if isinstance(spec, type) and issubclass(spec, base) and getattr(module, spec.__name__, None) is spec:
        return spec.__name__
    if callable(spec) and getattr(module, getattr(spec, "__name__", ""), None) is spec:
        return spec.__name__                  # a built-in function such as kc.losses.mean_squared_error
    if reg is not None and not isinstance(spec, base):
        return {"registered_name": reg}
    raise NotSerializable(f"the {kind} {spec!r} has no saved form: register it with "
                          "@kc.saving.register_keras_serializable() or use a built-in name or class")


def _deser(tree, kind: str, custom_objects: dict):
    if isinstance(tree, list):
        return [_deser(t, kind, custom_objects) for t in tree]
    if not isinstance(tree, dict):
        return tree
    if "registered_name" in tree and "class_name" not in tree:
        from kcompile.frontend.saving import get_registered
        obj = get_registered(tree["registered_name"], custom_objects)
        if obj is None:
            raise ValueError(f"the saved {kind} '{tree['registered_name']}' is not registered: register it with "
                             "@kc.saving.register_keras_serializable() or pass it in custom_objects")
        return obj
    if "class_name" not in tree:
        return {k: _deser(v, kind, custom_objects) for k, v in tree.items()}
    module, base = (losses_mod, losses_mod.Loss) if kind == "loss" else (metrics_mod, metrics_mod.Metric)
    cls = getattr(module, str(tree["class_name"]), None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"unknown {kind} class {tree['class_name']!r} in the compile config")
    return cls.from_config(dict(tree.get("config") or {}))


# -- training state --------------------------------------------------------------------------
def training_state(model) -> tuple[dict, dict]:
    """({"iterations", "rng_counter", "slots": [[variable index, slot]]}, {"s<k>": array}) of a compiled model."""
    opt = model.optimizer
    meta = {"iterations": int(opt.iterations), "rng_counter": int(getattr(model, "_rng_counter", 0)), "slots": []}
    arrays = {}
    for i, v in enumerate(model.trainable_variables):
        for slot, value in opt.slots.get(v.path, {}).items():
            arrays[f"s{len(meta['slots'])}"] = np.asarray(value)
            meta["slots"].append([i, slot])
    return meta, arrays


def restore_training_state(model, meta: dict, arrays: dict, where: str):
    """Put the saved step count, slots and RNG counter back; everything is checked before anything is set
    (a state saved from another model, or a damaged one, is a clear error naming `where`)."""
    opt, trainable = model.optimizer, model.trainable_variables
    named = [f"s{k}" for k in range(len(meta.get("slots", [])))]
    unexpected = sorted(set(arrays) - set(named))
    if unexpected:
        raise ValueError(f"{where}: unexpected array(s) {unexpected} in the optimizer state (expected {named})")
    for key in ("iterations", "rng_counter"):
        if not isinstance(meta.get(key, 0), int) or meta.get(key, 0) < 0:
            raise ValueError(f"{where}: '{key}' must be a non-negative integer, got {meta.get(key)!r}")
    slots = {}
    for k, entry in enumerate(meta.get("slots", [])):
        index, slot = entry if isinstance(entry, (list, tuple)) and len(entry) == 2 else (None, None)
        if not (isinstance(index, int) and 0 <= index < len(trainable)) or f"s{k}" not in arrays:
            raise ValueError(f"{where}: optimizer slot {k} refers to trainable variable {index!r}, but the model "
                             f"has {len(trainable)} (or its array s{k} is missing): the state is of another model")
        v, a = trainable[index], arrays[f"s{k}"]
        if tuple(a.shape) != tuple(v.shape) or a.dtype.kind != "f":
            raise ValueError(f"{where}: optimizer slot '{slot}' of '{v.path}' has shape {tuple(a.shape)} "
                             f"({a.dtype}), the variable has shape {tuple(v.shape)}: the state is of another model")
        slots.setdefault(v.path, {})[str(slot)] = np.array(a, dtype=v.value_array.dtype)
    for path, values in slots.items():
        opt.slots[path] = values
    opt.iterations = int(meta.get("iterations", 0))
    model._rng_counter = int(meta.get("rng_counter", 0))
