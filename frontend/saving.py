"""Saving and loading models and weights in kcompile's own safe format (no pickle, no code on load).

A model file is a ZIP archive (any name; ".keras" is customary) holding three members:

  kcompile.json  {"format": "kcompile-model" | "kcompile-weights", "version": 1}
  config.json    model files only: {"model": <layer config tree>, "weights": [{"path", "shape", "dtype"}]}
  weights.npz    a NumPy .npz archive of arrays "w0", "w1", ... in `model.weights` order,
                 read with allow_pickle=False (object arrays are refused)

The layer config tree is plain JSON: {"class_name", "config"}; functional models list their layers
and the call graph (nodes referring to tensors by node index); Sequential models list their
layers. Classes are looked up by name among the built-in layers and the classes registered with
`register_keras_serializable` (or passed as `custom_objects`); nothing is imported or evaluated
from the file. Writes go to a temporary file in the same folder, renamed into place (atomic).
Weights are matched by position and checked by shape, so layer auto-numbering may differ.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np

from kcompile.ir import load_budget
from kcompile.ir.atomic_files import write_atomic  # noqa: F401  (also BackupAndRestore's)

FORMAT_VERSION = 1
_REGISTRY: dict = {}     # "package>Name" and "Name" -> class or function
# kcompile's own registered classes that live in lazily imported modules: imported when a file names them
_LAZY_CLASSES = {"kcompile>PruneLowMagnitude": "kcompile.frontend.pruning"}


# -- registration of custom objects ----------------------------------------------------------
def register_keras_serializable(package="Custom", name=None):
    """Decorator: make a custom layer/model/activation loadable by name."""
    def decorate(obj):
        key = name or obj.__name__
        registered = f"{package}>{key}"
        _REGISTRY[registered] = obj
        _REGISTRY.setdefault(key, obj)
        obj._registered_name = registered
        return obj
    return decorate


def registered_name(obj) -> str | None:
    name = getattr(obj, "_registered_name", None)
    return name if name is not None and _REGISTRY.get(name) is obj else None


def get_registered(name: str, custom_objects: dict | None = None):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _LAZY_CLASSES and name not in _REGISTRY:
        import importlib
        importlib.import_module(_LAZY_CLASSES[name])
    return _REGISTRY.get(name)


def get_registered_object(name, custom_objects=None, module_objects=None):
    return get_registered(name, custom_objects) or (module_objects or {}).get(name)


class custom_object_scope:
    """Within this scope, `custom_objects` are visible to loading by name."""

    def __init__(self, custom_objects: dict):
        self.custom_objects = dict(custom_objects)
        self.saved = {}

    def __enter__(self):
        for k, v in self.custom_objects.items():
            self.saved[k] = _REGISTRY.get(k)
            _REGISTRY[k] = v
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                _REGISTRY.pop(k, None)
            else:
                _REGISTRY[k] = v


# -- public entry points ---------------------------------------------------------------------
def save_model(model, filepath, overwrite=True, format="kcompile"):
    """Save architecture, weights and compile state; format="keras" writes Keras 3's own .keras layout."""
    if format == "keras":
        from .keras_archive import save_keras_model
        return save_keras_model(model, filepath, overwrite=overwrite)
    if format != "kcompile":
        raise ValueError(f"save_model: format must be 'kcompile' or 'keras', got {format!r}")
    from .config_tree import serialize_layer
    weights = model.weights
    config = {"model": serialize_layer(model),
              "weights": [{"path": v.path, "shape": list(v.shape), "dtype": v.dtype} for v in weights]}
    if getattr(model, "_quantization", None):
        config["quantization"] = model._quantization   # plain JSON; int8 weights are stored as int8
    members = _compile_members(model, config)
    _write_archive(filepath, "kcompile-model", config, [v.numpy() for v in weights], overwrite, members)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved with `model.save` (its architecture, then its weights by position)."""
    from .config_tree import deserialize_layer
    if _is_keras_archive(filepath):
        from .keras_archive import load_keras_model
        with load_budget.loading(os.fspath(filepath)):
            return load_keras_model(filepath, custom_objects=custom_objects, compile=compile)
    with load_budget.loading(os.fspath(filepath)):   # the arrays and every weight the config builds
        kind, config, arrays = _read_archive(filepath)
        if kind != "kcompile-model" or config is None:
            raise ValueError(f"{filepath}: is a kcompile weights file, not a model; use model.load_weights")
        try:
            model = deserialize_layer(config["model"], custom_objects or {})
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{filepath}: malformed model config ({type(e).__name__}: {e})") from None
        if config.get("quantization"):
            from .quantization import restore
            restore(model, config["quantization"])
    _assign(model, arrays, filepath)
    if compile and config.get("compile"):
        _restore_compile(model, config, filepath, custom_objects)
    return model


def save_weights(model, filepath, overwrite=True, format="kcompile"):
    """format="keras" writes Keras 3's HDF5 .weights.h5 layout; load_weights reads either."""
    if format == "keras":
        from .keras_archive import save_keras_weights
        return save_keras_weights(model, filepath, overwrite)
    if format != "kcompile":
        raise ValueError(f"save_weights: format must be 'kcompile' or 'keras', got {format!r}")
    weights = model.weights
    index = {"weights": [{"path": v.path, "shape": list(v.shape), "dtype": v.dtype} for v in weights]}
    _write_archive(filepath, "kcompile-weights", index, [v.numpy() for v in weights], overwrite)


def load_weights(model, filepath):
    from .keras_archive import is_keras_weights_file
    if is_keras_weights_file(filepath):
        from .keras_archive import load_keras_weights
        with load_budget.loading(os.fspath(filepath)):
            return load_keras_weights(model, filepath)
    with load_budget.loading(os.fspath(filepath)):
        _, _, arrays = _read_archive(filepath)
    _assign(model, arrays, filepath)


# -- archive I/O -----------------------------------------------------------------------------
def _write_archive(filepath, kind: str, config: dict, arrays: list, overwrite: bool, members=None):
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    buf = io.BytesIO()
    np.savez(buf, **{f"w{i}": np.asarray(a, order="C") for i, a in enumerate(arrays)})  # keeps 0-d arrays 0-d
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("kcompile.json", json.dumps({"format": kind, "version": FORMAT_VERSION}))
            z.writestr("config.json", json.dumps(config, indent=1))
            z.writestr("weights.npz", buf.getvalue())
            for name, data in (members or {}).items():
                z.writestr(name, data)
    write_atomic(filepath, write, suffix=".kcompile")


def _read_archive(filepath):
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        raise FileNotFoundError(f"no such kcompile model/weights file: {filepath}")
    try:
        with zipfile.ZipFile(filepath) as z:
            for member in ("kcompile.json", "config.json", "weights.npz"):   # sizes before inflating
                load_budget.charge_bytes(f"archive member '{member}'", z.getinfo(member).file_size)
            header = json.loads(z.read("kcompile.json"))
            config = json.loads(z.read("config.json"))
            npz = z.read("weights.npz")
    except load_budget.LoadBudgetError:
        raise
    except (zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError, KeyError, EOFError, OSError,
            ValueError, UnicodeDecodeError, RuntimeError) as e:   # RuntimeError: a member flagged encrypted
        raise ValueError(f"{filepath}: not a valid kcompile file (corrupt, truncated or another format): "
                         f"{type(e).__name__}: {e}") from None
    if not isinstance(header, dict) or header.get("format") not in ("kcompile-model", "kcompile-weights"):
        raise ValueError(f"{filepath}: unknown format header {header!r}")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{filepath}: format version {header.get('version')} is not supported "
                         f"(this kcompile reads version {FORMAT_VERSION})")
    if not isinstance(config, dict) or not isinstance(config.get("weights", []), list):
        raise ValueError(f"{filepath}: malformed model config: expected an object with a 'weights' list, "
                         f"got {type(config).__name__}")
    arrays = _read_arrays(npz, len(config.get("weights", [])), filepath)
    return header["format"], config if header["format"] == "kcompile-model" else None, arrays


def _read_arrays(npz: bytes, count: int, filepath) -> list:
    """The arrays w0..w{count-1}: each header is checked against the loading budget before its data is read."""
    try:
        data = load_budget.read_npz(io.BytesIO(npz), f"{filepath}: weights.npz")
        arrays = [data[f"w{i}"] for i in range(count)]
    except load_budget.LoadBudgetError:
        raise
    except (ValueError, KeyError) as e:
        raise ValueError(f"{filepath}: weights are corrupt or not plain numeric arrays "
                         f"({type(e).__name__}: {e})") from None
    for i, a in enumerate(arrays):
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{filepath}: weight w{i} has unsupported dtype {a.dtype}")
    return arrays


def _assign(model, arrays: list, filepath):
    weights = model.weights
    if len(weights) != len(arrays):
        raise ValueError(f"{filepath}: holds {len(arrays)} weight arrays but model '{model.name}' has "
                         f"{len(weights)} weights ({[v.path for v in weights]})")
    for v, a in zip(weights, arrays):
        if tuple(a.shape) != tuple(v.shape):
            raise ValueError(f"{filepath}: weight for '{v.path}' has shape {tuple(a.shape)}, "
                             f"the model expects {tuple(v.shape)}")
    for v, a in zip(weights, arrays):
        v.assign(a)


# -- compile state (frontend/compile_state.py) ------------------------------------------------
def _compile_members(model, config: dict) -> dict:
    """Put the compile config into `config`; returns {"optimizer.npz": bytes} with the training state."""
    from .compile_state import compile_config, training_state
    compiled = compile_config(model)
    if compiled is None:
        return {}
    meta, arrays = training_state(model)
    config["compile"], config["training_state"] = compiled, meta
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return {"optimizer.npz": buf.getvalue()}


def _restore_compile(model, config: dict, filepath, custom_objects):
    from .compile_state import compile_from_config, restore_training_state
    try:
        with zipfile.ZipFile(filepath) as z:
            npz = z.read("optimizer.npz")
        with load_budget.loading(os.fspath(filepath)):
            arrays = load_budget.read_npz(io.BytesIO(npz), f"{filepath}: optimizer.npz")
    except load_budget.LoadBudgetError:
        raise
    except (zipfile.BadZipFile, zlib.error, struct.error, KeyError, EOFError, OSError, ValueError) as e:
        raise ValueError(f"{filepath}: the optimizer state is missing or corrupt ({type(e).__name__}: {e})") from None
    compile_from_config(model, config["compile"], custom_objects)
    restore_training_state(model, config.get("training_state", {}), arrays, str(filepath))


def _is_keras_archive(filepath) -> bool:
    """A zip written by Keras 3 (metadata.json, config.json, model.weights.h5) rather than by kcompile."""
    try:
        with zipfile.ZipFile(os.fspath(filepath)) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error):
        return False
    return "kcompile.json" not in names and {"config.json", "model.weights.h5"} <= names


def model_config(model) -> dict:
    from .config_tree import serialize_layer
    return serialize_layer(model)


def functional_config(model) -> dict:
    from .config_tree import functional_config as fc
    return fc(model)
