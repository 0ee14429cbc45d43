"""The train step split in two native entries, with one packed f32 buffer between them.

Data-parallel fit needs a point between "gradients computed" and "weights updated" where the
processes sum their gradients. So the fused train step (train_step.py) is built as two graphs:

  gradient entry  the train step's inputs plus "__grad_scale" (this process's share of the global
                  batch, n_r / N); outputs "packed" and "pred:<output>". packed is one f32 vector:
                  every gradient (of the loss times the scale), every new state value
                  (BatchNormalization moving statistics), the total loss and the per-output losses,
                  each flattened and multiplied by the scale.
                  Summed over processes (one in-place allreduce), it holds the gradient of the mean
                  loss over the whole global batch, the sample-weighted mean of the states and the
                  global losses.
  update entry    inputs "packed", "__learning_rate", "__iterations"; it slices the gradients out,
                  runs the optimizer (clipping, weight decay, constraints) and writes the variables,
                  the optimizer slots and the states in place, as the fused step does.

PackedLayout records where each piece sits, so the Python side reads the losses from the same
offsets the graphs use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kcompile.ir import GraphBuilder, TensorType, f32

from .emitter import GraphEmitter
from .train_step import (StepGraph, _loss_and_pred_outputs, _pred_names, _safe, emit_optimizer_update,
                         trace_loss_and_grads, update_output)

PACKED = "packed"
GRAD_SCALE = "__grad_scale"


@dataclass
class PackedLayout:
    """(kind, name, shape, offset) of each piece of the packed buffer; kinds: grad, state, loss."""
    pieces: list = field(default_factory=list)
    size: int = 0

    def add(self, kind: str, name: str, shape: tuple) -> None:
        self.pieces.append((kind, name, tuple(shape), self.size))
        self.size += int(np.prod(shape, dtype=np.int64))

    def of(self, kind: str) -> list:
        return [p for p in self.pieces if p[0] == kind]


def build_gradient_step(model, compiled, y_types, has_sw):
    """The gradient entry (see the module docstring) and the layout of its packed output."""
    # the gradients are those of the scaled loss: a collective inside the step (synchronized BatchNormalization)
    # then sums already-weighted cotangents, as the global mean loss needs
    b, tr, total, per_output, trainable, grads, extra = trace_loss_and_grads(
        model, compiled, y_types, has_sw, "grad_step", (GRAD_SCALE,), loss_scale=GRAD_SCALE)
    E, scale, layout, pieces = GraphEmitter(b), extra[GRAD_SCALE], PackedLayout(), []

    def pack(kind, name, value, scaled=True):
        if value.type.dtype != f32:
            raise NotImplementedError(f"data-parallel training: {kind} '{name}' is {value.type.dtype.name}; only f32 "
                                      "gradients and states can be averaged across processes")
        layout.add(kind, name, value.type.shape)
        pieces.append(E.op("reshape", value if not scaled else E.op("mul", value, scale), shape=(-1,)))

    for v, g in zip(trainable, grads):
        pack("grad", v.path, g, scaled=False)
    for path, value in tr.state_updates.items():
        pack("state", path, value)
    loss_outs, loss_names = _loss_and_pred_outputs(compiled, total, per_output, [])
    for name, value in zip(loss_names, loss_outs):
        pack("loss", name, value)
    packed = pieces[0] if len(pieces) == 1 else E.op("concat", *pieces, axis=0)
    outs, names = _loss_and_pred_outputs(compiled, total, per_output, tr.outputs)
    preds = [(v, n) for v, n in zip(outs, names) if n.startswith("pred:")]
    graph = b.build([packed] + [v for v, _ in preds], [PACKED] + [n for _, n in preds])
    step = StepGraph(graph, dict(tr.variables), {}, _pred_names(compiled))
    return step, layout, trainable, sorted(tr.state_updates)


def build_update_step(model, compiled, layout: PackedLayout, trainable, state_paths) -> StepGraph:
    """The update entry: optimizer update from the summed packed buffer, states copied out of it."""
    b = GraphBuilder(f"{_safe(model.name)}_update_step")
    packed = b.input(PACKED, TensorType((layout.size,), f32))
    lr = b.input("__learning_rate", TensorType((), f32))
    it = b.input("__iterations", TensorType((), f32))
    E = GraphEmitter(b)

    def unpack(offset, shape):
        size = int(np.prod(shape, dtype=np.int64))
        flat = E.op("slice", packed, axes=(0,), starts=(offset,), ends=(offset + size,))
        return E.op("reshape", flat, shape=tuple(shape))

    variables = {v.path: v for v in model.weights}
    params = {v.path: b.param(v.path, v.value_array) for v in trainable}
    grads = [unpack(offset, shape) for _, _, shape, offset in layout.of("grad")]
    slot_params, updated = emit_optimizer_update(b, compiled.optimizer, trainable, params, grads, lr, it)
    for _, path, shape, offset in layout.of("state"):
        b.param(path, variables[path].value_array)
        updated.append((path, unpack(offset, shape)))
    b.meta["param_updates"] = {update_output(param): param for param, _ in updated}
    graph = b.build([v for _, v in updated], [update_output(p) for p, _ in updated])
    used = {v.path: v for v in trainable} | {p: variables[p] for p in state_paths}
    return StepGraph(graph, used, slot_params, [])
