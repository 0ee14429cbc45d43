"""Keras 3's .keras archive: read files Keras writes, write files Keras loads (needs h5py: `keras-io` extra).

The zip holds metadata.json, config.json (frontend/keras_config.py) and model.weights.h5
(frontend/keras_weights.py). Loading builds the whole model, reads and checks every weight and the
optimizer state, and only then assigns them, so a bad file leaves nothing half-loaded; no code from the
file runs (Lambda layers and unregistered custom classes are refused). The compile config is turned
back into compile() arguments as Keras's compile_from_config does.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import warnings
import zipfile

from .keras_config import KerasFormatError, model_from_keras, model_to_keras

# what metadata.json claims: the Keras 3 file format, written by kcompile (Keras reads no field of it)
FORMAT_KERAS_VERSION = "3.0.0"
_KERAS_MODULES = {"loss": "keras.losses", "metric": "keras.metrics"}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading and writing Keras's .keras format needs h5py: pip install 'kcompile[keras-io]'") \
            from None
    return h5py


# -- writing ---------------------------------------------------------------------------------
def save_keras_model(model, filepath, overwrite=True):
    """Write `model` as Keras 3 writes it; kcompile-only parts raise KerasFormatError before any file is made."""
    from .keras_weights import write_optimizer, write_weights
    from .saving import write_atomic
    h5py = _h5py()
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    tree = model_to_keras(model)
    compiled = _keras_compile_config(model)
    if compiled is not None:
        tree["compile_config"] = compiled
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        write_weights(h5, model)
        if compiled is not None:
            write_optimizer(h5, model)
    metadata = {"keras_version": FORMAT_KERAS_VERSION, "saved_by": "kcompile",
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:   # Keras writes its archives uncompressed
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(tree))
            z.writestr("model.weights.h5", buf.getvalue())
    os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
    write_atomic(filepath, write, suffix=".keras")


def _keras_compile_config(model):
    from .compile_state import compile_config
    config = compile_config(model)
    if config is None:
        return None
    try:
        opt = config["optimizer"]
        opt_config = dict(opt["config"])
        if isinstance(opt_config.get("learning_rate"), dict):
            opt_config["learning_rate"] = _wrap(opt_config["learning_rate"], "keras.optimizers.schedules")
        return {"optimizer": _wrap({"class_name": opt["class_name"], "config": opt_config}, "keras.optimizers"),
                "loss": _wrap_items(config["loss"], "loss"), "loss_weights": config["loss_weights"],
                "metrics": _wrap_items(config["metrics"], "metric"),
                "weighted_metrics": _wrap_items(config["weighted_metrics"], "metric"),
                "run_eagerly": False, "steps_per_execution": 1, "jit_compile": True}
    except KerasFormatError as e:
        warnings.warn(f"model '{model.name}' is written without its compile state: {e}", stacklevel=3)
        return None


def _wrap(tree: dict, module: str) -> dict:
    return {"module": module, "class_name": tree["class_name"], "config": tree["config"], "registered_name": None}


def _wrap_items(spec, kind):
    if isinstance(spec, list):
        return [_wrap_items(s, kind) for s in spec]
    if isinstance(spec, dict) and "registered_name" in spec:
        raise KerasFormatError(f"the {kind} '{spec['registered_name']}' is a kcompile-registered function")
    if isinstance(spec, dict) and "class_name" in spec:
        return _wrap(spec, _KERAS_MODULES[kind])
    if isinstance(spec, dict):
        return {k: _wrap_items(v, kind) for k, v in spec.items()}
    return spec


# -- reading ---------------------------------------------------------------------------------
def load_keras_model(filepath, custom_objects=None, compile=True):
    """A kcompile model from a .keras file Keras 3 wrote (see the module docstring)."""
    from .keras_weights import read_optimizer, read_weights
    h5py = _h5py()
    filepath = os.fspath(filepath)
    try:
        with zipfile.ZipFile(filepath) as z:
            tree = json.loads(z.read("config.json"))
            weights = z.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError) as e:
        raise ValueError(f"{filepath}: not a readable Keras archive ({type(e).__name__}: {e})") from None
    try:
        model = model_from_keras(tree, custom_objects or {})
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise KerasFormatError(f"{filepath}: malformed Keras model config ({type(e).__name__}: {e})") from None
    compiled = tree.get("compile_config") if compile else None
    if compiled:
        from .compile_state import compile_from_config
        try:
            compile_from_config(model, _strip_compile_config(compiled), custom_objects)
        except (ValueError, TypeError) as e:
            warnings.warn(f"{filepath}: the model is returned uncompiled: its compile config cannot be used "
                          f"({e})", stacklevel=2)
            compiled = None
    with _h5_errors(filepath):
        with h5py.File(io.BytesIO(weights), "r") as h5:
            pairs = read_weights(h5, model, tree, filepath)
            restore_optimizer = read_optimizer(h5, model, filepath) if compiled else None
    for v, a in pairs:
        v.assign(a.astype(v.value_array.dtype))
    if restore_optimizer is not None:
        restore_optimizer()
    return model


class _h5_errors:
    """HDF5 files that h5py cannot read, or whose groups are datasets where groups belong: a ValueError."""

    def __init__(self, filepath):
        self.filepath = filepath

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is not None and issubclass(kind, (OSError, KeyError, TypeError, AttributeError)):
            raise KerasFormatError(f"{self.filepath}: the HDF5 weights are not readable in Keras's layout "
                                   f"({kind.__name__}: {error})") from None
        return False


# -- weights-only files (Keras's model.save_weights("x.weights.h5")) ---------------------------------
def is_keras_weights_file(filepath) -> bool:
    filepath = os.fspath(filepath)
    if not os.path.isfile(filepath):
        return False
    with open(filepath, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def save_keras_weights(model, filepath, overwrite=True):
    """Keras 3's .weights.h5: the model's layer groups alone, in saving_lib's layout."""
    from .keras_weights import write_weights
    from .saving import write_atomic
    h5py = _h5py()
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        write_weights(h5, model)
    write_atomic(filepath, lambda f: f.write(buf.getvalue()), suffix=".h5")


def load_keras_weights(model, filepath):
    """Weights from a Keras .weights.h5 file, all checked before any is assigned."""
    from .keras_weights import read_weights
    h5py = _h5py()
    filepath = os.fspath(filepath)
    with _h5_errors(filepath):
        with h5py.File(filepath, "r") as h5:
            pairs = read_weights(h5, model, None, filepath)
    for v, a in pairs:
        v.assign(a.astype(v.value_array.dtype))


def _strip_compile_config(config: dict) -> dict:
    from .keras_config import _strip
    out = {k: _strip(_builtin_names(config.get(k)))
           for k in ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics")}
    for key in ("loss", "metrics", "weighted_metrics"):
        if _has_function(out[key]):
            raise ValueError(f"its {key} is a serialized Python function, which kcompile does not load")
    return out


def _builtin_names(spec):
    """Keras serializes a function (keras.losses.mean_squared_error) by its name alone; the name is looked up
    among kcompile's built-in losses and metrics (an unknown one leaves the model uncompiled, with a warning)."""
    if isinstance(spec, list):
        return [_builtin_names(s) for s in spec]
    if isinstance(spec, dict) and spec.get("class_name") == "function" and isinstance(spec.get("config"), str):
        return spec["config"]
    if isinstance(spec, dict):
        return {k: _builtin_names(v) for k, v in spec.items()}
    return spec


def _has_function(spec) -> bool:
    if isinstance(spec, list):
        return any(_has_function(s) for s in spec)
    if isinstance(spec, dict):
        return spec.get("class_name") == "function" or any(_has_function(v) for v in spec.values()
                                                           if isinstance(v, (list, dict)))
    return False
