"""Emitters: write a formula once (losses, optimizer updates) and run it as IR or eagerly.

A formula is a Python function over an emitter `E` calling `E.op(name, *inputs, **attrs)`.
`GraphEmitter` records the ops into a GraphBuilder (the train-step graph); `NumpyEmitter` runs
each op's reference implementation at once on NumPy arrays (eager optimizer updates), so both
paths share one definition of every formula. Python numbers become f32 constants (as in Keras).
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import GraphBuilder, Value, get_op
from kcompile.ir import dtype as to_dtype


class GraphEmitter:
    """Emits ops into a GraphBuilder; values are ir.Values."""

    def __init__(self, builder: GraphBuilder, trace=None):
        self.b = builder
        self.trace = trace  # the TraceContext user code (custom losses) is traced in

    def call_user(self, fn, *values):
        """Run a user's KTensor function (custom loss, metric) on Values, tracing it into the builder."""
        from kcompile.frontend.tensor import KTensor, TraceContext, tracing
        ctx = self.trace or TraceContext(self.b)
        with tracing(ctx):
            out = fn(*[KTensor(value=v, trace=ctx) for v in values])
        return _unwrap_traced(ctx, out)

    def op(self, name: str, *inputs, **attrs):
        return self.b.op(name, *[self.lift(x, inputs) for x in inputs], **attrs)

    def lift(self, x, peers=()):
        if isinstance(x, Value):
            return x
        return self.b.constant(np.asarray(x, dtype=_peer_dtype(self, peers)))

    def shape(self, x) -> tuple:
        return tuple(x.type.shape)

    def is_tensor(self, x) -> bool:
        return isinstance(x, Value)

    def dtype(self, x):
        return x.type.dtype


class NumpyEmitter:
    """Runs each op's reference implementation immediately; values are NumPy arrays."""

    def op(self, name: str, *inputs, **attrs):
        opdef = get_op(name)
        arrays = [self.lift(x, inputs) for x in inputs]
        attrs = opdef.normalize_attrs(attrs, f"op '{name}'")
        opdef.infer_types([_type_of(a) for a in arrays], attrs, f"op '{name}'")
        out = opdef.reference(arrays, attrs, None)
        return out[0] if len(out) == 1 else tuple(out)

    def lift(self, x, peers=()):
        if isinstance(x, np.ndarray) and not _is_python_number(x):
            return x
        return np.asarray(x, dtype=_peer_dtype(self, peers))

    def shape(self, x) -> tuple:
        return tuple(np.shape(x))

    def call_user(self, fn, *arrays):
        from kcompile.frontend.tensor import KTensor, convert_to_tensor
        out = fn(*[KTensor(data=a) for a in arrays])
        return convert_to_tensor(out).numpy()

    def is_tensor(self, x) -> bool:
        return isinstance(x, np.ndarray)

    def dtype(self, x):
        return to_dtype(np.asarray(x).dtype)


class KTensorEmitter:
    """Applies ops to KTensors through frontend.tensor.apply: eager (recorded by tapes) or traced."""

    def op(self, name: str, *inputs, **attrs):
        from kcompile.frontend.tensor import apply
        return apply(name, *inputs, **attrs)

    def lift(self, x, peers=()):
        from kcompile.frontend.tensor import KTensor, convert_to_tensor
        if isinstance(x, KTensor):
            return x
        return convert_to_tensor(x, _peer_dtype(self, peers) if peers else None)

    def shape(self, x) -> tuple:
        return tuple(x.ir_shape)

    def dtype(self, x):
        return x.ir_type.dtype

    def is_tensor(self, x) -> bool:
        from kcompile.frontend.tensor import KTensor
        return isinstance(x, KTensor)

    def call_user(self, fn, *tensors):
        from kcompile.frontend.tensor import convert_to_tensor
        return convert_to_tensor(fn(*tensors))


def eager_emitter() -> KTensorEmitter:
    """The emitter for user-facing calls: KTensor ops, eager or inside an active trace."""
    return KTensorEmitter()


def _unwrap_traced(ctx, out) -> Value:
    from kcompile.frontend.tensor import KTensor, traced_value, convert_to_tensor
    t = out if isinstance(out, KTensor) else convert_to_tensor(out)
    return traced_value(ctx, t)


def _type_of(a: np.ndarray):
    from kcompile.ir import TensorType
    return TensorType(a.shape, to_dtype(a.dtype))


def _is_python_number(x) -> bool:
    return isinstance(x, (int, float, bool))


def _peer_dtype(E, peers):
    """A literal takes the dtype of the first non-bool tensor operand beside it (else f32)."""
    for p in peers:
        if E.is_tensor(p) and E.dtype(p).name != "bool":
            return E.dtype(p).np
    return np.float32


# -- small formulas shared by losses, metrics and optimizers ---------------------------------
def clip(E, x, lo, hi):
    return E.op("minimum", E.op("maximum", x, lo), hi)


def mean(E, x, axis=None, keepdims=False):
    axes = () if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    return E.op("reduce_mean", x, axes=axes, keepdims=keepdims)


def total(E, x, axis=None, keepdims=False):
    axes = () if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    return E.op("reduce_sum", x, axes=axes, keepdims=keepdims)


def cast(E, x, dt):
    return x if E.dtype(x) == to_dtype(dt) else E.op("cast", x, dtype=dt)
