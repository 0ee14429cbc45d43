"""GradientTape.gradient and Optimizer.apply_gradients inside kc.function: emitted into the trace.

The gradient is kcompile's symbolic autodiff (passes.autodiff.backprop) on the trace's own builder,
with respect to every Value a variable was read as; the optimizer update is the same formula as fit's
train step (Optimizer.emit_update) over the variables' and slots' current Values, so a compiled step
and an eager one apply the very same arithmetic.
"""
from __future__ import annotations

from kcompile.passes.autodiff import backprop

from . import tensor as T
from .optimizers import constraints_of
from .state_trace import StateTrace, initial_values
from .variables import Variable


def traced_gradient(tape, ctx: StateTrace, targets: list, sources: list, output_gradients, unconnected):
    """d sum(targets) / d sources as traced tensors (None, or zeros, where unconnected)."""
    b = ctx.builder
    y = _seed(ctx, targets, output_gradients)
    wrt = [_source_values(ctx, tape, s) for s in sources]
    live = list({id(v): v for vs in wrt for v in vs if v.type.dtype.is_float and _depends(y, v)}.values())
    grads = dict(zip(map(id, live), backprop(b, y, live))) if live else {}
    out = []
    for s, vs in zip(sources, wrt):
        parts = [grads[id(v)] for v in vs if id(v) in grads]
        g = parts[0] if parts else None
        for p in parts[1:]:
            g = b.op("add", g, p)
        if g is None and unconnected == "zero":
            g = b.op("mul", T.traced_value(ctx, s), b.constant(0, s.ir_type.dtype))
        out.append(None if g is None else T.KTensor(value=g, trace=ctx))
    return out


def _seed(ctx, targets, output_gradients):
    """One scalar to differentiate: TF sums non-scalar and several targets (weighted by output_gradients)."""
    b = ctx.builder
    ys = [T.traced_value(ctx, T.convert_to_tensor(t)) for t in targets]
    if output_gradients is not None:
        from .tape import _flatten
        cts = [T.traced_value(ctx, T.convert_to_tensor(g)) for g in _flatten(output_gradients)]
        parts = [b.op("reduce_sum", b.op("mul", y, c)) for y, c in zip(ys, cts)]
    else:
        parts = [y if y.type.shape == () else b.op("reduce_sum", y) for y in ys]
    total = parts[0]
    for p in parts[1:]:
        total = b.op("add", total, p)
    return total


def _source_values(ctx, tape, s) -> list:
    """The Values a source stands for: every read of a watched Variable, or a traced tensor itself."""
    if isinstance(s, Variable):
        if not tape._is_watched(s):
            return []
        c = ctx.cells.get(id(s))
        return list(c.reads) if c is not None else []
    if not isinstance(s, T.KTensor) or not s.is_traced:
        return []
    if s.value.producer is None and not tape._is_watched(s):   # a function input nobody watched
        return []
    return [s.value]


def _depends(y, w) -> bool:
    from .tape import _depends as depends
    return depends([y], w)


def traced_apply_gradients(optimizer, ctx: StateTrace, grads: list, variables: list):
    """Emit clipping, weight decay and the update into the trace; count one iteration."""
    b = ctx.builder
    with initial_values(ctx):
        optimizer.build(variables)
    slots = {s: [ctx.slot_cell(optimizer, v.path, s) for v in variables] for s in optimizer.active_slots()}
    params = [ctx.param_for(v) for v in variables]
    gvals = [_grad_value(ctx, g, v) for g, v in zip(grads, variables)]
    lr = ctx.learning_rate(optimizer)
    it = b.op("cast", ctx.param_for(optimizer.iterations), dtype="f32")
    new_params, new_slots = optimizer.emit_update(
        b, params, gvals, {s: [c.current for c in cells] for s, cells in slots.items()}, lr, it,
        [v.path for v in variables], constraints_of(variables))
    for v, value in zip(variables, new_params):
        ctx.assign_variable(v, T.KTensor(value=value, trace=ctx))
    for s, cells in slots.items():
        for c, value in zip(cells, new_slots[s]):
            c.current = value
    optimizer.finish_step()   # a traced assign_add: the iteration count is state too


def _grad_value(ctx, g, v):
    value = T.traced_value(ctx, T.convert_to_tensor(g))
    if tuple(value.type.shape) != v.data.shape:
        raise ValueError(f"apply_gradients: gradient of shape {tuple(value.type.shape)} for variable "
                         f"'{v.path}' of shape {v.data.shape}")
    if value.type.dtype.np != v.data.dtype:
        value = ctx.builder.op("cast", value, dtype=T.keras_dtype(v.data.dtype))
    return value
