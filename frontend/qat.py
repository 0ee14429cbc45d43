"""Quantization-aware training: fake_quantize ops in the traced graph, ranges as TF-MOT learns them.

`quantize_aware(model)` returns a NEW model whose int8-able layers (the quantize-int8 pass's groups)
trace with fake quantization, as TF-MOT's default 8-bit scheme does:
  - kernels: per output channel, symmetric narrow range [-max|w|, max|w|] of the current weights
    (TF-MOT's LastValueQuantizer), the same grid the int8 conversion uses;
  - activations: each such layer's output, and its input unless an upstream layer already
    fake-quantizes it, per tensor with moving min/max (TF-MOT's MovingAverageQuantizer): in
    training, min/max := DECAY * min/max + (1 - DECAY) * batch min/max (the first batch sets them).
The forward pass fake-quantizes with the ranges as they were before the step (the moving
averages take no gradient); the gradient is the straight-through estimator of fake_quantize.
Before the first training step a range is unset and the value passes through unquantized.
`kc.quantization.quantize(qat_model)` converts with the learned ranges, no calibration data.
"""
from __future__ import annotations

import numpy as np

DECAY = 0.99      # TF-MOT uses 0.999; 0.99 settles within the few hundred steps of a QAT fine-tune
VIEWS = ("reshape", "max_pool2d")


def quantize_aware(model):
    """A new model: a float copy of `model` whose int8-able layers train with fake quantization."""
    from kcompile.passes.quant_plan import find_groups
    from .quantization import float_copy, layer_owning, require_built, set_state
    require_built(model, "quantize_aware")
    if getattr(model, "_quantization", None):
        raise ValueError(f"model '{model.name}' is already quantized (mode {model._quantization['mode']!r})")
    new = float_copy(model)
    by_path = {v.path: v for v in new.weights}
    layers = [layer_owning(new, by_path.get(g.weight.param_name)) for g in find_groups(new.forward_graph())]
    layers = [layer for layer in layers if layer is not None]
    for layer in layers:
        attach(layer)
    set_state(new, {"mode": "qat", "layers": [layer.name for layer in layers]})
    return new


def attach(layer):
    """Give layer its range variables, its kernel's fake-quantized read and the tracing hook."""
    from .variables import Variable
    folder = layer.kernel.path.rsplit("/", 1)[0]
    ranges = {}
    for site in ("input", "output"):
        pair = []
        for end in ("min", "max"):
            v = Variable(np.float32(0), name=f"qat_{site}_{end}", trainable=False)
            v.path = f"{folder}/qat_{site}_{end}"
            layer._own_variables.append(v)
            pair.append(v)
        ranges[site] = tuple(pair)
    object.__setattr__(layer, "_qat_ranges", ranges)
    layer.kernel.read_as = fake_quantized_kernel
    object.__setattr__(layer, "_trace_hook", qat_call)


def fake_quantized_kernel(ctx, w):
    """Per output channel (last axis), symmetric narrow range from the weights themselves."""
    b = ctx.builder
    top = b.reduce_max(b.abs(w), axes=list(range(w.type.rank - 1)))
    return b.fake_quantize(w, b.neg(top), top, narrow=True)


def qat_call(layer, args, kwargs, ctx):
    """The layer's call with its input (unless already fake-quantized) and output fake-quantized."""
    from .tensor import KTensor
    done = ctx.__dict__.setdefault("fake_quantized", set())
    x = args[0]
    if isinstance(x, KTensor) and x.is_traced and not _quantized_upstream(x.value, done):
        x = KTensor(value=_activation(layer, "input", x.value, ctx), trace=ctx)
    out = layer._call_checked((x,) + tuple(args[1:]), kwargs, ctx)
    y = _activation(layer, "output", out.value, ctx)
    done.add(y)
    return KTensor(value=y, trace=ctx)


def _quantized_upstream(v, done: set) -> bool:
    while v not in done and v.producer is not None and v.producer.op in VIEWS:
        v = v.producer.inputs[0]
    return v in done


def _activation(layer, site, v, ctx):
    b = ctx.builder
    lo_var, hi_var = layer._qat_ranges[site]
    lo, hi = ctx.param_for(lo_var), ctx.param_for(hi_var)
    ready = b.greater(hi, lo)                       # set by the first training step
    y = b.where(ready, b.fake_quantize(v, lo, hi), v)
    if ctx.training:
        keep, new = b.constant(np.float32(DECAY)), b.constant(np.float32(1 - DECAY))
        for var, old, batch in ((lo_var, lo, b.reduce_min(v)), (hi_var, hi, b.reduce_max(v))):
            ctx.state_updates[var.path] = b.where(ready, b.add(b.mul(old, keep), b.mul(batch, new)), batch)
    return y


def convert_qat(qat_model):
    """The static int8 model of a trained QAT model, from its learned ranges (no calibration data)."""
    from kcompile.passes.quant_plan import value_keys
    from .quantization import make_static
    ranges = learned_ranges(qat_model)
    if not ranges:
        raise ValueError(f"QAT model '{qat_model.name}' has no learned ranges yet: train it (fit) first")
    new = plain_copy(qat_model)
    graph = new.forward_graph()
    keys = value_keys(graph)
    for n in graph.nodes:                           # a range holds through reshape and max pooling
        if n.op in VIEWS and keys[n.inputs[0]] in ranges:
            ranges.setdefault(keys[n.outputs[0]], ranges[keys[n.inputs[0]]])
    return make_static(new, graph, ranges, [], True, "qat")


def learned_ranges(qat_model) -> dict:
    """{value key: (min, max)} of every fake-quantized activation whose range is set."""
    from kcompile.passes.quant_plan import static_value, value_keys
    graph = qat_model.forward_graph()
    keys, out = value_keys(graph), {}
    for n in graph.nodes:
        if n.op == "fake_quantize" and not n.attrs["narrow"]:
            lo, hi = (float(static_value(v, graph.param_values)) for v in n.inputs[1:])
            if hi > lo:
                out[keys[n.inputs[0]]] = (lo, hi)
    return out


def plain_copy(qat_model):
    """A float model of the same architecture with the QAT model's trained weights (by path)."""
    from .models import clone_model
    new = clone_model(qat_model)
    trained = {v.path: v.numpy() for v in qat_model.weights}
    for v in new.weights:
        v.assign(trained[v.path])
    return new
