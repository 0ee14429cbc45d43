"""kc.quantization: int8 models. Quantization is a pass over the traced IR, never a layer variant.

Two forms, both recorded in `model._quantization` (plain JSON, saved with the model):
  - Keras 3's in place `model.quantize("int8")`: Dense kernels become int8 (per output column,
    Keras's kernel_scale = 127 / absmax); the `dynamic-int8` pass quantizes activations per row.
  - `quantize(model, calibration_data=...)`: a NEW model, static int8 from calibrated ranges
    (`quantize-int8`: per-channel weights, per-tensor activations, int8 between layers).
An int8 kernel is an int8 variable whose `read_as` makes the tracer read it as
dequantize(q, 1 / kernel_scale, 0), which the passes turn into integer arithmetic.
QAT (`quantize_aware`) lives in frontend/qat.py.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import state_version

KERAS_MODES = ("int8", "int4", "float8", "gptq", "awq")
STATIC = "static_int8"


# -- Keras 3: model.quantize(mode) -------------------------------------------------------------
def quantize_in_place(model, mode=None, config=None, filters=None, **kwargs):
    """Keras 3's `Model.quantize`: int8 Dense kernels in place; other Keras modes are refused clearly."""
    if kwargs.pop("type_check", True) is not True or kwargs:
        raise ValueError(f"Unrecognized keyword arguments passed to {type(model).__name__}.quantize: {kwargs}")
    if config is not None or filters is not None:
        raise NotImplementedError("model.quantize: `config` and `filters` are not supported by kcompile; "
                                  "call model.quantize('int8')")
    if mode not in KERAS_MODES:
        raise ValueError(f"Invalid quantization mode. Expected one of {list(KERAS_MODES)}. Received: mode={mode!r}")
    if mode != "int8":
        raise NotImplementedError(f"model.quantize: mode {mode!r} is a Keras mode kcompile does not support yet; "
                                  "use 'int8' (or kc.quantization.quantize for static int8)")
    require_built(model, "quantize")
    if getattr(model, "_quantization", None):
        raise ValueError(f"model '{model.name}' is already quantized (mode {model._quantization['mode']!r})")
    layers = [layer for layer in all_layers(model) if type(layer).__name__ == "Dense"]
    for layer in all_layers(model):
        if type(layer).__name__ in ("Embedding", "EinsumDense"):
            warnings.warn(f"layer '{layer.name}' ({type(layer).__name__}) stays float: kcompile's int8 mode "
                          "quantizes Dense layers only")
    for layer in layers:
        int8_kernel(layer, keras_kernel_int8(layer.kernel.numpy()))
    set_state(model, {"mode": "int8", "layers": [layer.name for layer in layers]})


def keras_kernel_int8(w: np.ndarray) -> tuple:
    """keras.quantizers.abs_max_quantize(w, axis=0) with to_numpy=True: (int8 values, scale = 127/absmax)."""
    scale = np.divide(127, np.add(np.max(np.abs(w), axis=0, keepdims=True), 1e-7))
    q = np.clip(np.round(np.multiply(w, scale)), -127, 127).astype(np.int8)
    return q, np.squeeze(scale, axis=0).astype(np.float32)


def int8_kernel(layer, values=None):
    """Replace layer.kernel by an int8 variable and add `kernel_scale` (zeros and ones when values is None)."""
    from .variables import Variable
    old = layer.kernel
    q, scale = values if values is not None else (np.zeros(old.shape, np.int8), np.ones(old.shape[-1], np.float32))
    kernel = Variable(q, name="kernel", trainable=False, dtype="int8")
    kernel_scale = Variable(scale, name="kernel_scale", trainable=False)
    folder = old.path.rsplit("/", 1)[0] + "/" if "/" in old.path else ""
    kernel.path, kernel_scale.path = old.path, folder + "kernel_scale"
    kernel.read_as = lambda ctx, q: dequantized(ctx, q, kernel_scale)
    layer._own_variables.remove(old)
    object.__setattr__(layer, "kernel", kernel)
    object.__setattr__(layer, "kernel_scale", kernel_scale)
    layer._own_variables.extend([kernel, kernel_scale])


def dequantized(ctx, q, kernel_scale):
    """How the tracer reads an int8 kernel: dequantize(q, 1 / kernel_scale, 0); the int8 passes match it."""
    b = ctx.builder
    return b.dequantize(q, b.reciprocal(ctx.param_for(kernel_scale)), b.constant(np.zeros(kernel_scale.shape, np.int8)))


# -- static int8: kc.quantization.quantize ----------------------------------------------------------
def quantize(model, calibration_data=None, method="minmax", per_channel=True, validation_data=None,
             max_accuracy_drop=None):
    """A NEW static-int8 model: ranges calibrated natively on `calibration_data`; see the module doc."""
    from kcompile.compiler.calibrate import calibrate
    from kcompile.compiler.quant_fallback import choose_float_layers
    from kcompile.passes.quant_ranges import check_method
    require_built(model, "quantize")
    if getattr(model, "_quantization", None) and model._quantization["mode"] == "qat":
        from .qat import convert_qat
        return convert_qat(model)
    if getattr(model, "_quantization", None):
        raise ValueError(f"model '{model.name}' is already quantized (mode {model._quantization['mode']!r}); "
                         "quantize its float original")
    check_method(method)
    if calibration_data is None:
        raise ValueError("kc.quantization.quantize needs calibration_data (samples of the model's inputs)")
    if (validation_data is None) != (max_accuracy_drop is None):
        raise ValueError("validation_data and max_accuracy_drop go together: give both or neither")
    from .training.backend import resolve_backend
    backend = resolve_backend(None)                 # native unless kc.config.set_backend("reference")
    new = float_copy(model)
    graph = new.forward_graph()
    ranges = calibrate(graph, calibration_data, method, backend=backend)
    fallback = (choose_float_layers(graph, ranges, validation_data, max_accuracy_drop, per_channel, backend)
                if validation_data is not None else None)
    float_layers = fallback["kept_float"] if fallback else []
    return make_static(new, graph, ranges, float_layers, per_channel, method, fallback)


def make_static(new, graph, ranges: dict, float_layers, per_channel: bool, method: str, fallback=None):
    """Turn the float copy `new` into the static int8 model; its report says what is int8 and what is not."""
    from kcompile.passes.quant_plan import find_groups
    from kcompile.passes.quant_ranges import weight_qparams
    by_path = {v.path: v for v in new.weights}
    int8_layers = []
    for g in find_groups(graph):
        owner = layer_owning(new, by_path.get(g.weight.param_name))
        if g.layer in float_layers or owner is None:
            continue
        q, s = weight_qparams(owner.kernel.numpy(), -1 if per_channel else None)
        int8_kernel(owner, (q, np.broadcast_to(1 / s, q.shape[-1:]).astype(np.float32)))
        int8_layers.append(owner.name)
    set_state(new, {"mode": STATIC, "layers": int8_layers, "ranges": {k: list(v) for k, v in ranges.items()},
                    "float_layers": list(float_layers), "per_channel": bool(per_channel), "method": method})
    from kcompile.passes.quantize import weight_bytes
    new.quantization_report = dict(new.forward_graph().meta["quantization"], calibration_method=method,
                                   accuracy_fallback=fallback, weight_bytes_before=weight_bytes(graph))
    return new


# -- shared --------------------------------------------------------------------------------
def apply_quantization(graph, state: dict):
    """The traced forward graph of a quantized model -> its int8 graph (called by trace.forward_graph)."""
    from kcompile.passes.quantize import quantize_int8
    from kcompile.passes.quantize_dynamic import dynamic_int8
    if state["mode"] == "int8":
        return dynamic_int8(graph)
    if state["mode"] == STATIC:
        ranges = {k: tuple(v) for k, v in state["ranges"].items()}
        return quantize_int8(graph, ranges, state["float_layers"], state["per_channel"])
    return graph


def quantize_aware(model):
    """A new QAT model (fake quantization, moving min/max ranges): see frontend/qat.py."""
    from .qat import quantize_aware as qat_model
    return qat_model(model)


def restore(model, state: dict):
    """Re-create the int8 (or QAT) variables of a loaded quantized model (values come with its weights)."""
    from .qat import attach
    names = set(state["layers"])
    for layer in all_layers(model):
        if layer.name in names:
            attach(layer) if state["mode"] == "qat" else int8_kernel(layer)
    set_state(model, state)


def set_state(model, state: dict):
    object.__setattr__(model, "_quantization", state)
    model.__dict__.pop("_predict_cache", None)      # the cached executor ran the float graph
    state_version.bump()


def float_copy(model):
    """A new model of the same architecture and weights (the quantized model must not share variables)."""
    from .models import clone_model
    new = clone_model(model)
    new.set_weights(model.get_weights())
    return new


def require_built(model, what: str):
    if not getattr(model, "built", False) or not model.weights:
        raise ValueError(f"Cannot {what} a model that isn't yet built: model '{model.name}' has no weights; "
                         "build it (call it on data or model.build(input_shape)) first")


def all_layers(model) -> list:
    out = []
    for layer in getattr(model, "_sublayers", []):
        out.append(layer)
        out.extend(all_layers(layer))
    return out


def layer_owning(model, variable):
    for layer in all_layers(model):
        if variable is not None and getattr(layer, "kernel", None) is variable:
            return layer
    return None
