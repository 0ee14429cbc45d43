"""The train-step and test-step graphs: forward, loss (+ regularization), gradients, optimizer update.

Train-step graph (one per model, loss, optimizer and input signature):
  inputs   model inputs (named as the model's), targets "y" (or "y:<output>"), "sample_weight"
           (optional), "__rng_counter" (i64), "__learning_rate" (f32), "__iterations" (f32, the
           optimizer's step count before this update)
  params   the model variables read (by path) and optimizer slots "optimizer/<slot>/<path>"
  outputs  "loss" (total), "loss:<output>" (unweighted, several outputs only), "pred:<output>",
           then "update:<path>" for every updated variable, slot and BN moving statistic; the graph's
           meta["param_updates"] maps each of those to its parameter, so native code writes the
           update into the parameter's own buffer (in place) instead of returning it.
Metrics accumulate in NumPy on the "pred:" outputs (see metrics.py), except those fit's train step
accumulates in the graph itself (native_metrics.py: the loss tracker, accuracies).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kcompile.ir import Graph, GraphBuilder, TensorType, f32, i64
from kcompile.frontend.optimizers import constraints_of
from kcompile.passes.autodiff import backprop

from . import native_metrics
from .emitter import GraphEmitter


@dataclass
class StepGraph:
    graph: Graph
    variables: dict                 # path -> Variable read (fed as params each call)
    slot_params: dict = field(default_factory=dict)   # param name -> (path, slot)
    pred_names: list = field(default_factory=list)
    native_metrics: list = field(default_factory=list)  # Mean metrics the graph accumulates in place


def update_output(param: str) -> str:
    """The name of the train step's output holding the new value of parameter `param`."""
    return f"update:{param}"


def target_name(output_names, i):
    return "y" if len(output_names) == 1 else f"y:{output_names[i]}"


def _inputs(b, model, y_types, has_sw):
    xs = [b.input(name, spec) for name, spec in model.input_specs()]
    names = model.output_names
    ys = [None if t is None else b.input(target_name(names, i), t) for i, t in enumerate(y_types)]
    sw = b.input("sample_weight", TensorType(("N",), f32)) if has_sw else None
    return xs, ys, sw


def emit_loss(E, compiled, ys, preds, sw, extra_losses):
    """Total loss = sum(weight_i * loss_i(y_i, pred_i, sw)) + sum(regularization losses)."""
    per_output, total = [], None
    for i, (loss, weight) in enumerate(zip(compiled.losses, compiled.loss_weights)):
        if loss is None:
            per_output.append(None)
            continue
        if ys[i] is None:
            raise ValueError(f"output '{compiled.output_names[i]}' has a loss but no target data was given")
        value = loss.emit(E, ys[i], preds[i], sw)
        per_output.append(value)
        term = value if weight == 1.0 else E.op("mul", value, float(weight))
        total = term if total is None else E.op("add", total, term)
    for extra in extra_losses:
        extra = extra if E.shape(extra) == () else E.op("reduce_sum", extra)
        total = extra if total is None else E.op("add", total, extra)
    if total is None:
        raise ValueError("the model has no loss to minimize: pass loss= to compile() or use add_loss()")
    return total, per_output


def trace_loss_and_grads(model, compiled, y_types, has_sw, entry, scalars, loss_scale=None):
    """The front half of every train step: inputs, the traced forward pass, the loss and the gradients
    of the trainable variables it reads (of the loss times the scalar input named `loss_scale`, if
    given). `scalars` names the extra f32 scalar inputs (after the rng counter); returns (builder,
    trace, total loss, per-output losses, trainable, grads, scalar Values)."""
    from kcompile.frontend.trace import trace_model
    b = GraphBuilder(f"{_safe(model.name)}_{entry}")
    xs, ys, sw = _inputs(b, model, y_types, has_sw)
    rng = b.input("__rng_counter", TensorType((), i64))
    extra = {name: b.input(name, TensorType((), f32)) for name in scalars}
    tr = trace_model(model, b, xs, training=True, rng_counter=rng)
    total, per_output = emit_loss(GraphEmitter(b), compiled, ys, tr.outputs, sw, tr.losses)
    trainable = [v for v in model.trainable_weights if v.path in tr.params]
    if not trainable:
        raise ValueError(f"model '{model.name}' has no trainable weights used by its forward pass: nothing to train")
    target = total if loss_scale is None else b.op("mul", total, extra[loss_scale])
    grads = backprop(b, target, [tr.params[v.path] for v in trainable])
    return b, tr, total, per_output, trainable, grads, extra


def build_train_step(model, compiled, y_types, has_sw, metrics_inside=False) -> StepGraph:
    """metrics_inside: the graph accumulates the loss tracker and the metrics it can (native_metrics.py)."""
    b, tr, total, per_output, trainable, grads, extra = trace_loss_and_grads(
        model, compiled, y_types, has_sw, "train_step", ("__learning_rate", "__iterations"))
    lr, it = extra["__learning_rate"], extra["__iterations"]
    slot_params, updated = emit_optimizer_update(b, compiled.optimizer, trainable, tr.params, grads, lr, it)
    variables = dict(tr.variables)
    chosen = native_metrics.plan(compiled, y_types, has_sw) if metrics_inside else []
    if chosen:
        y = next(v for v in b.inputs if v.name == target_name(compiled.output_names, 0))
        metric_vars, metric_updates = native_metrics.emit(b, chosen, total, y, tr.outputs[0])
        variables.update(metric_vars)
        updated += metric_updates
    outs, names = _loss_and_pred_outputs(compiled, total, per_output, tr.outputs)
    updated += list(tr.state_updates.items())
    for param, v in updated:
        outs.append(v)
        names.append(update_output(param))
    b.meta["param_updates"] = {update_output(param): param for param, _ in updated}
    graph = b.build(outs, names)
    return StepGraph(graph, variables, slot_params, _pred_names(compiled), [m for m, _ in chosen])


def emit_optimizer_update(b, opt, trainable, params, grads, lr, it):
    """The optimizer's update of the trainable variables (Values `params[path]`) from `grads`: returns
    (slot param name -> (path, slot), [(parameter name, new Value)] for the variables and the slots)."""
    opt.build(trainable)
    slot_params, slots = {}, {}
    for s in opt.active_slots():
        slots[s] = []
        for v in trainable:
            name = opt.slot_param_name(s, v.path)
            slots[s].append(b.param(name, opt.slots[v.path][s]))
            slot_params[name] = (v.path, s)
    paths = [v.path for v in trainable]
    new_params, new_slots = opt.emit_update(b, [params[p] for p in paths], grads, slots, lr, it, paths,
                                            constraints_of(trainable))
    updated = list(zip(paths, new_params))
    updated += [(opt.slot_param_name(s, p), v) for s in slots for p, v in zip(paths, new_slots[s])]
    return slot_params, updated


def build_test_step(model, compiled, y_types, has_sw) -> StepGraph:
    """Loss (with regularization) and predictions in inference mode."""
    from kcompile.frontend.trace import trace_model
    b = GraphBuilder(f"{_safe(model.name)}_test_step")
    xs, ys, sw = _inputs(b, model, y_types, has_sw)
    tr = trace_model(model, b, xs, training=False)
    total, per_output = emit_loss(GraphEmitter(b), compiled, ys, tr.outputs, sw, tr.losses)
    outs, names = _loss_and_pred_outputs(compiled, total, per_output, tr.outputs)
    for param, v in tr.state_updates.items():   # stateful RNNs carry their states through evaluate too
        outs.append(v)
        names.append(update_output(param))
    b.meta["param_updates"] = {update_output(param): param for param in tr.state_updates}
    return StepGraph(b.build(outs, names), dict(tr.variables), {}, _pred_names(compiled))


def output_types(model) -> list:
    """The output TensorTypes of the model's inference graph (traced once, cheap)."""
    from kcompile.frontend.trace import trace_model
    b = GraphBuilder("shapes")
    xs = [b.input(name, spec) for name, spec in model.input_specs()]
    return [v.type for v in trace_model(model, b, xs, training=False).outputs]


def _loss_and_pred_outputs(compiled, total, per_output, preds):
    outs, names = [total], ["loss"]
    if len(compiled.output_names) > 1:
        for name, value in zip(compiled.output_names, per_output):
            if value is not None:
                outs.append(value)
                names.append(f"loss:{name}")
    for name, p in zip(compiled.output_names, preds):
        outs.append(p)
        names.append(f"pred:{name}")
    return outs, names


def _pred_names(compiled):
    return [f"pred:{n}" for n in compiled.output_names]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "model"
