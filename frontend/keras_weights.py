"""Weights and optimizer state in Keras 3's model.weights.h5 layout <-> kcompile variables and slots.

Keras's saving_lib stores each layer's own variables (trainable first, in creation order) as datasets
"0", "1", ... of the group "layers/<key>/vars", where <key> is the snake-cased class name made unique
within the model ("dense", "dense_1", ...; not the layer's name), nested models under their own
"layers/<key>/layers/..."; the recurrent layers keep theirs on a "cell" sublayer. The optimizer's group
"optimizer/vars" holds iterations, the learning rate (unless it is a schedule), then the slots, one
add_optimizer_variables group after another, interleaved per trainable variable inside a group.
"""
from __future__ import annotations

import numpy as np

from .keras_config import KerasFormatError
from .layers.base import to_snake_case

CELL_LAYERS = {"LSTM", "GRU", "SimpleRNN"}      # weights on Keras's `cell` sublayer

# Keras 3's slot groups per optimizer (its build() calls to add_optimizer_variables, in order)
SLOT_GROUPS = {
    "SGD": lambda o: [["momentum"]] if o.momentum != 0 else [],
    "RMSprop": lambda o: [["velocity"]] + ([["momentum"]] if o.momentum > 0 else []) +
    ([["average_gradient"]] if o.centered else []),
    "Adam": lambda o: [["momentum", "velocity"]] + ([["velocity_hat"]] if o.amsgrad else []),
    "Adagrad": lambda o: [["accumulator"]], "Nadam": lambda o: [["momentum", "velocity"]],
    "Adamax": lambda o: [["momentum", "norm"]], "Adadelta": lambda o: [["accumulated_grad", "accumulated_delta_var"]],
    "Ftrl": lambda o: [["accumulator", "linear"]], "Lion": lambda o: [["momentum"]],
}
SLOT_GROUPS["AdamW"] = SLOT_GROUPS["Adam"]


def weight_groups(model, tree=None, prefix="") -> list:
    """[(h5 group path, layer name, [Variable])] for every layer, in Keras's walk order.

    `tree` is the model's Keras config when reading a file: its layer list gives Keras's order (the one
    the file's keys were numbered in); when writing, kcompile's model.layers order (Keras's) is used.
    """
    from .models import Functional, Sequential
    layers = _layers_in_order(model, tree)
    groups, used = [], {}
    for layer, sub_tree in layers:
        path = f"{prefix}layers/{_unique(to_snake_case(type(layer).__name__), used)}"
        if isinstance(layer, (Sequential, Functional)):
            groups.append((path, layer.name, []))
            groups += weight_groups(layer, sub_tree, path + "/")
            continue
        if layer.layers:
            raise KerasFormatError(f"layer '{layer.name}' ({type(layer).__name__}) has sublayers whose Keras "
                                   "weight layout kcompile does not know")
        if type(layer).__name__ in CELL_LAYERS:
            groups.append((path, layer.name, []))
            path += "/cell"
        groups.append((path, layer.name, layer.weights))
    return groups


def _layers_in_order(model, tree):
    from .models import Sequential
    if tree is None:
        return [(layer, None) for layer in model.layers]
    by_name = {layer.name: layer for layer in model.layers}
    out = []
    for sub in tree["config"]["layers"]:
        name = sub.get("name") or sub.get("config", {}).get("name")
        if isinstance(model, Sequential) and sub.get("class_name") == "InputLayer":
            continue     # Keras's Sequential.layers leaves its InputLayer out
        if name not in by_name:
            raise KerasFormatError(f"layer '{name}' of the file's config is not in the rebuilt model")
        out.append((by_name[name], sub if sub.get("class_name") in ("Sequential", "Functional") else None))
    return out


def _unique(name: str, used: dict) -> str:
    """saving_lib._get_unique_name: "dense", then "dense_1", "dense_2", ..."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def write_weights(h5, model):
    h5.create_group("vars").attrs["name"] = model.name
    for path, name, variables in weight_groups(model):
        group = h5.require_group(path + "/vars")
        group.attrs["name"] = name
        for i, v in enumerate(variables):
            group[str(i)] = np.asarray(v.numpy())


def read_weights(h5, model, tree, where: str) -> list:
    """[(Variable, array)] for every weight, all checked against the model before anything is assigned."""
    pairs = []
    for path, name, variables in weight_groups(model, tree):
        group = h5.get(path + "/vars")
        keys = sorted(group.keys(), key=int) if group is not None else []
        if len(keys) != len(variables):
            raise KerasFormatError(f"{where}: layer '{name}' has {len(variables)} weights "
                                   f"{[tuple(v.shape) for v in variables]}, the file holds {len(keys)} under "
                                   f"'{path}/vars'")
        for key, v in zip(keys, variables):
            a = np.asarray(group[key])
            if tuple(a.shape) != tuple(v.shape) or a.dtype.kind not in "fiu":
                raise KerasFormatError(f"{where}: weight '{v.path}' of layer '{name}' has shape {tuple(v.shape)}, "
                                       f"the file's '{path}/vars/{key}' has shape {tuple(a.shape)} ({a.dtype})")
            pairs.append((v, a))
    return pairs


# -- optimizer -----------------------------------------------------------------------------
def _slot_order(opt, variables) -> list:
    groups = SLOT_GROUPS.get(type(opt).__name__)
    if groups is None:
        raise KerasFormatError(f"optimizer {type(opt).__name__} has no known Keras variable layout")
    return [(v, s) for group in groups(opt) for v in variables for s in group]


def _base_count(opt) -> int:
    from .schedules import LearningRateSchedule
    return 1 if isinstance(opt._learning_rate, LearningRateSchedule) else 2


def write_optimizer(h5, model):
    opt = model.optimizer
    group = h5.require_group("optimizer/vars")
    group.attrs["name"] = opt.name
    values = [np.asarray(int(opt.iterations), np.int64)]
    if _base_count(opt) == 2:
        values.append(np.asarray(opt.learning_rate, np.float32))
    variables = model.trainable_variables
    if variables and all(v.path in opt.slots for v in variables):     # built: the slots exist
        values += [opt.slots[v.path][s] for v, s in _slot_order(opt, variables)]
        if type(opt).__name__ == "Nadam":    # Keras keeps one u_product scalar; kcompile one per variable
            values.append(np.asarray(opt.slots[variables[0].path]["u_product"].flat[0], np.float32))
    for i, value in enumerate(values):
        group[str(i)] = value


def read_optimizer(h5, model, where: str):
    """Returns a function that sets the optimizer state (after the weights are in), or None with a warning."""
    import warnings
    opt, variables = model.optimizer, model.trainable_variables
    group = h5.get("optimizer/vars")
    values = [np.asarray(group[k]) for k in sorted(group.keys(), key=int)] if group is not None else []
    base, order = _base_count(opt), _slot_order(opt, variables)
    extra = 1 if type(opt).__name__ == "Nadam" else 0
    if len(values) not in (base, base + len(order) + extra):
        warnings.warn(f"{where}: optimizer state skipped: the file holds {len(values)} optimizer variables, "
                      f"{type(opt).__name__} over this model has {base + len(order) + extra}", stacklevel=3)
        return None
    slots = {}
    for (v, s), a in zip(order, values[base:]):
        if tuple(a.shape) != tuple(v.shape):
            raise KerasFormatError(f"{where}: optimizer slot '{s}' of '{v.path}' has shape {tuple(a.shape)}, the "
                                   f"variable {tuple(v.shape)}")
        slots.setdefault(v.path, {})[s] = np.array(a, dtype=np.float32)
    if extra and len(values) > base:
        for v in variables:
            slots[v.path]["u_product"] = np.full(v.shape, float(values[-1]), np.float32)

    def restore():
        opt.iterations = int(values[0])
        if base == 2:
            opt.learning_rate = float(values[1])
        opt.slots.update(slots)
    return restore
