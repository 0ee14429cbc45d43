"""kc.utils: to_categorical, plot_model (through graphviz's `dot`), set_random_seed, serialization aliases."""
from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np

from .data_utils import pad_sequences, split_dataset, timeseries_dataset_from_array  # noqa: F401
from .directory_datasets import image_dataset_from_directory, text_dataset_from_directory  # noqa: F401
from .file_cache import get_file  # noqa: F401
from .initializers import set_random_seed as _seed_initializers
from .py_dataset import PyDataset, Sequence  # noqa: F401
from .saving import custom_object_scope, get_registered_object, register_keras_serializable  # noqa: F401


def to_categorical(x, num_classes=None):
    """One-hot rows for integer class labels (a trailing axis of size 1 is dropped), as Keras."""
    x = np.array(x, dtype="int64")
    input_shape = x.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = tuple(input_shape[:-1])
    x = x.reshape(-1)
    if not num_classes:
        num_classes = int(np.max(x)) + 1
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got min {x.min()}, max {x.max()}")
    categorical = np.zeros((x.shape[0], num_classes))
    categorical[np.arange(x.shape[0]), x] = 1
    return categorical.reshape(input_shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    x = np.asarray(x)
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def set_random_seed(seed: int):
    """Seed Python's, NumPy's and kcompile's generators (initializers, eager dropout)."""
    import random
    random.seed(seed)
    np.random.seed(seed)
    _seed_initializers(seed)


# -- plot_model --------------------------------------------------------------------------------
def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 dpi=200, **kwargs) -> str:
    """The layer graph in graphviz's DOT language (one box per layer, edges along the calls)."""
    lines = ["digraph G {", f'  graph [rankdir="{rankdir}", dpi={int(dpi)}];',
             '  node [shape="record", fontname="Helvetica"];']
    graph_model = _graph_model(model)
    for layer in graph_model.layers:
        parts = [f"{layer.name} ({type(layer).__name__})" if show_layer_names else type(layer).__name__]
        if show_shapes:
            parts.append(f"output: {getattr(layer, '_output_spec', '?')}")
        if show_dtype:
            parts.append(f"dtype: {layer.dtype}")
        lines.append(f'  "{id(layer)}" [label="{"|".join(_escape(p) for p in parts)}"];')
    for src, dst in _edges(graph_model):
        lines.append(f'  "{id(src)}" -> "{id(dst)}";')
    lines.append("}")
    return "\n".join(lines)


def _graph_model(model):
    """A Sequential is drawn from its functional graph, so its input layer shows too."""
    inner = getattr(model, "_functional", None)
    return inner if inner is not None else model


def _escape(text: str) -> str:
    return "".join("\\" + c if c in '{}|<>"' else c for c in text)


def _edges(model):
    from .functional import producer
    from .layers.nodes import LayerNode
    nodes = getattr(model, "_nodes", None)
    if nodes is None:   # subclassed model: layers in order
        return list(zip(model.layers, model.layers[1:]))
    edges = []
    for node in nodes:
        if not isinstance(node, LayerNode):
            continue
        for t in node.symbolic_inputs():
            parent = producer(t)
            if isinstance(parent, LayerNode) and any(parent.layer is lay for lay in model.layers):
                edges.append((parent.layer, node.layer))
    return edges


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=False,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False,
               show_trainable=False, **kwargs):
    """Draw the model's layer graph to a PNG/SVG/PDF (format from the extension) with graphviz's `dot`."""
    dot = shutil.which("dot")
    if dot is None:
        raise OSError("plot_model needs the graphviz program 'dot', which is not installed "
                      "(install graphviz, e.g. `apt-get install graphviz`)")
    fmt = os.path.splitext(os.fspath(to_file))[1].lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf", "jpg", "jpeg", "dot"):
        raise ValueError(f"plot_model: unsupported file format '.{fmt}'")
    source = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype,
                          show_layer_names=show_layer_names or True, rankdir=rankdir, dpi=dpi)
    if fmt == "dot":
        with open(to_file, "w") as f:
            f.write(source)
        return
    result = subprocess.run([dot, f"-T{fmt}", "-o", os.fspath(to_file)], input=source.encode(),
                            capture_output=True, check=False)
    if result.returncode:
        raise RuntimeError(f"plot_model: dot failed: {result.stderr.decode(errors='replace')}")
