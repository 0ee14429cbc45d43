"""KTensor, the one tensor type users see, and `apply`, the single entry every op goes through.

A KTensor is in one of three modes:
  eager     - holds a NumPy array `.data`, computed at once with the op's reference implementation;
  traced    - wraps an `ir.Value` being recorded into an active TraceContext's GraphBuilder;
  symbolic  - a Keras-style functional tensor: only a type and the node that made it
              (`_keras_history`), replayed later by the tracer (kc.Input, layers called on it).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from kcompile.ir import GraphBuilder, TensorType, Value, check_input_dtype, dtype as to_dtype, get_op
from kcompile.ir.ops.elementwise import BINARY

from . import eager_native

# Eager recorders (engineer B's GradientTape appends itself): record(op, inputs, attrs, outputs).
RECORDERS: list = []

# The stack of active TraceContexts, one per thread: two threads tracing at once (say, the first
# predict of one model from several threads) would otherwise see and pop each other's trace.
_LOCAL = threading.local()


def _traces() -> list:
    stack = getattr(_LOCAL, "traces", None)
    if stack is None:
        stack = _LOCAL.traces = []
    return stack


class TracedValueError(ValueError):
    """A traced or symbolic tensor's value was needed (.numpy(), bool(), float()) before the graph ran."""


class TraceContext:
    """One active trace: the builder, variables read as params, training flag, updates and losses."""

    def __init__(self, builder: GraphBuilder, training: bool = False, rng_counter: Value | None = None):
        self.builder = builder
        self.training = bool(training)
        self.rng_counter = rng_counter
        self.params: dict = {}          # path -> Value
        self.reads: dict = {}           # path -> what a variable with `read_as` reads as (kc.quantization)
        self.variables: dict = {}       # path -> Variable
        self.state_updates: dict = {}   # path -> Value
        self.losses: list = []          # scalar Values
        self.seed_uses: dict = {}       # seed -> times used (distinct masks for shared layers)

    def param_for(self, variable) -> Value:
        path = variable.path
        known = self.variables.get(path)
        if known is variable:
            return self.reads.get(path, self.params[path])
        if known is not None:
            raise ValueError(f"two different variables share the path '{path}'; give their layers unique names")
        # a snapshot: later assigns (or in-place writes to the graph's values) never alias the variable
        value = self.builder.param(path, variable.numpy())
        self.params[path] = value
        self.variables[path] = variable
        read_as = getattr(variable, "read_as", None)
        if read_as is not None:  # e.g. an int8 or fake-quantized kernel (kc.quantization): read(ctx, param)
            value = self.reads[path] = read_as(self, value)
        return value

    def counter(self, who: str) -> Value:
        if self.rng_counter is None:
            raise ValueError(f"{who} needs random numbers in training mode, but the trace was given no "
                             "rng_counter (pass rng_counter= to trace_model)")
        return self.rng_counter


def current_trace() -> TraceContext | None:
    stack = _traces()
    return stack[-1] if stack else None


@contextmanager
def tracing(ctx: TraceContext):
    """Make `ctx` the active trace: every op applied inside is emitted into its builder."""
    stack = _traces()
    stack.append(ctx)
    try:
        yield ctx
    finally:
        stack.pop()


# -- the tensor --------------------------------------------------------------------------------
class KTensor:
    """A tensor: eager (NumPy data), traced (an IR value) or symbolic (Keras functional)."""

    __array_priority__ = 100  # so ndarray + KTensor defers to KTensor.__radd__
    _keras_mask = None        # Keras 3's mask protocol (frontend/layers/masking.py): a bool KTensor or None

    def __init__(self, data=None, value: Value | None = None, trace: TraceContext | None = None,
                 spec: TensorType | None = None, history=None):
        self.data = data
        self.value = value
        self.trace = trace
        self.spec = spec
        self._keras_history = history

    # -- mode and type ------------------------------------------------------------------------
    @property
    def is_eager(self) -> bool:
        return self.value is None and self.spec is None

    @property
    def is_traced(self) -> bool:
        return self.value is not None

    @property
    def is_symbolic(self) -> bool:
        return self.spec is not None

    @property
    def ir_type(self) -> TensorType:
        """The IR type: leading dim may be the batch symbol 'N' (traced/symbolic), concrete when eager."""
        if self.value is not None:
            return self.value.type
        if self.spec is not None:
            return self.spec
        return TensorType(self.data.shape, to_dtype(self.data.dtype))

    @property
    def ir_shape(self) -> tuple:
        return self.ir_type.shape

    @property
    def shape(self) -> tuple:
        """Keras-style shape: None for the batch dimension."""
        return tuple(None if isinstance(d, str) else d for d in self.ir_shape)

    @property
    def ndim(self) -> int:
        return len(self.ir_shape)

    @property
    def dtype(self) -> str:
        return keras_dtype(self.ir_type.dtype)

    def numpy(self) -> np.ndarray:
        if not self.is_eager:
            raise TracedValueError(f"a {'traced' if self.is_traced else 'symbolic'} tensor {self.ir_type} has no "
                             "value yet: only eager tensors can be converted to NumPy")
        return self.data

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        if self.is_eager:
            return f"<KTensor shape={self.shape} dtype={self.dtype} numpy={self.data!r}>"
        kind = "traced" if self.is_traced else "symbolic"
        return f"<KTensor {kind} shape={self.shape} dtype={self.dtype}>"

    def __len__(self):
        d = self.ir_shape[0] if self.ir_shape else None
        if not isinstance(d, int):
            raise TypeError(f"len() of a tensor with shape {self.shape} is not static")
        return d

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self):
        return bool(self.numpy())

    def __format__(self, spec):
        return format(self.numpy(), spec) if self.is_eager and spec else object.__format__(self, spec)

    def __float__(self):
        return float(self.numpy())

    def __int__(self):
        return int(self.numpy())

    __hash__ = object.__hash__

    # -- Python operators (all through apply) --------------------------------------------------
    def __add__(self, o): return apply("add", self, o)
    def __radd__(self, o): return apply("add", o, self)
    def __sub__(self, o): return apply("sub", self, o)
    def __rsub__(self, o): return apply("sub", o, self)
    def __mul__(self, o): return apply("mul", self, o)
    def __rmul__(self, o): return apply("mul", o, self)
    def __truediv__(self, o): return true_divide(self, o)
    def __rtruediv__(self, o): return true_divide(o, self)
    def __floordiv__(self, o): return apply("floor", true_divide(self, o))
    def __pow__(self, o): return apply("pow", self, o)
    def __rpow__(self, o): return apply("pow", o, self)
    def __matmul__(self, o): return apply("matmul", self, o)
    def __rmatmul__(self, o): return apply("matmul", o, self)
    def __neg__(self): return apply("neg", self)
    def __pos__(self): return self
    def __abs__(self): return apply("abs", self)
    def __lt__(self, o): return apply("less", self, o)
    def __le__(self, o): return apply("less_equal", self, o)
    def __gt__(self, o): return apply("greater", self, o)
    def __ge__(self, o): return apply("greater_equal", self, o)
    def __eq__(self, o): return apply("equal", self, o)
    def __ne__(self, o): return apply("not_equal", self, o)
    def __and__(self, o): return apply("logical_and", self, o)
    def __or__(self, o): return apply("logical_or", self, o)
    def __invert__(self): return apply("logical_not", self)

    def __getitem__(self, key):
        from .indexing import getitem
        return getitem(self, key)

    @property
    def T(self):
        return apply("transpose", self, perm=tuple(reversed(range(self.ndim))))


def keras_dtype(dt) -> str:
    return {"f32": "float32", "f64": "float64", "i8": "int8", "u8": "uint8", "i32": "int32",
            "i64": "int64", "bool": "bool"}[to_dtype(dt).name]


def true_divide(a, b):
    """Keras true division: integer operands are cast to float32 first."""
    a, b = (cast_if_int(t) for t in (a, b))
    return apply("div", a, b)


def cast_if_int(t):
    if isinstance(t, KTensor) and not t.ir_type.dtype.is_float:
        return apply("cast", t, dtype="f32")
    return t


# -- conversion of loose values --------------------------------------------------------------
def to_array(x, dtype=None) -> np.ndarray:
    """A NumPy array for a Python/NumPy value; Python floats and float64 arrays become float32 (Keras)."""
    if np.iscomplexobj(x):
        check_input_dtype("a tensor value", np.asarray(x).dtype)   # refused, never cast to real
    if dtype is not None:
        return np.asarray(x, dtype=to_dtype(dtype).np)
    a = np.asarray(x)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.int64 and not isinstance(x, np.ndarray):
        return a.astype(np.int32)   # Python ints: int32, as Keras
    if a.dtype.kind in "US" or a.dtype == object:
        raise TypeError(f"cannot convert {type(x).__name__} {x!r} to a tensor")
    to_dtype(a.dtype)   # rejects unsupported element types
    return a


def convert_to_tensor(x, dtype=None) -> KTensor:
    if isinstance(x, KTensor):
        return x if dtype is None or to_dtype(dtype) == x.ir_type.dtype else apply("cast", x, dtype=dtype)
    return KTensor(data=to_array(x, dtype))


# -- apply -----------------------------------------------------------------------------------
_MATCH_DTYPE = set(BINARY) | {"where", "matmul", "maximum", "minimum"}


def apply(op_name: str, *inputs, **attrs):
    """Apply an IR op to tensors (or loose NumPy/Python values): eager, traced or symbolic."""
    opdef = get_op(op_name)
    where = f"op '{op_name}'"
    attrs = opdef.normalize_attrs(attrs, where)
    tensors = _convert_loose(op_name, inputs)
    if any(t.is_symbolic for t in tensors):
        return _apply_symbolic(op_name, tensors, attrs)
    ctx = _trace_for(tensors)
    if ctx is not None:
        return _apply_traced(ctx, op_name, tensors, attrs)
    return _apply_eager(opdef, tensors, attrs)


def _convert_loose(op_name, inputs) -> list:
    anchor = _anchor_dtype(inputs) if op_name in _MATCH_DTYPE else None
    out = []
    for x in inputs:
        if isinstance(x, KTensor):
            out.append(x)
        else:
            out.append(KTensor(data=_loose_array(x, anchor)))
    return out


def _anchor_dtype(inputs):
    """The dtype loose constants take in an elementwise op: that of the first float (else numeric) tensor."""
    types = [x.ir_type.dtype for x in inputs if isinstance(x, KTensor)]
    types += [to_dtype(to_array(x).dtype) for x in inputs if not isinstance(x, KTensor)]
    for pick in (lambda d: d.is_float, lambda d: d.is_int):
        for d in types:
            if pick(d):
                return d
    return None


def _loose_array(x, anchor):
    a = to_array(x)
    if anchor is not None and a.dtype.kind in "iuf" and not (anchor.is_int and a.dtype.kind == "f"):
        return a.astype(anchor.np)
    return a


def _trace_for(tensors) -> TraceContext | None:
    traces = {id(t.trace): t.trace for t in tensors if t.is_traced}
    if len(traces) > 1:
        raise ValueError("an op mixes tensors from two different traces")
    if traces:
        ctx = next(iter(traces.values()))
        active = current_trace()
        if active is not None and active is not ctx:
            raise ValueError("a traced tensor from another trace was used inside the active trace")
        return ctx
    return current_trace()


def traced_value(ctx: TraceContext, t: KTensor) -> Value:
    """The IR value for `t` in trace `ctx`: variables become params, eager data becomes constants."""
    if t.is_traced:
        return t.value
    from .variables import Variable
    if isinstance(t, Variable):
        return ctx.param_for(t)
    return ctx.builder.constant(t.data)


def _apply_traced(ctx, op_name, tensors, attrs):
    values = [traced_value(ctx, t) for t in tensors]
    out = ctx.builder.op(op_name, *values, **attrs)
    if isinstance(out, tuple):
        return tuple(KTensor(value=v, trace=ctx) for v in out)
    return KTensor(value=out, trace=ctx)


def _apply_eager(opdef, tensors, attrs):
    arrays = [t.data for t in tensors]
    where = f"op '{opdef.name}'"
    out_types = opdef.infer_types([TensorType(a.shape, to_dtype(a.dtype)) for a in arrays], attrs, where)
    batch = arrays[0].shape[0] if arrays and arrays[0].ndim else None
    results = eager_native.reference(opdef, arrays, attrs, batch)   # large repeated matmuls run compiled
    outs = [KTensor(data=np.asarray(r).astype(t.dtype.np, copy=False)) for r, t in zip(results, out_types)]
    for recorder in list(RECORDERS):
        recorder.record(opdef.name, list(tensors), dict(attrs), list(outs))
    return outs[0] if len(outs) == 1 else tuple(outs)


# -- symbolic (functional API) ---------------------------------------------------------------
class OpNode:
    """A raw op applied to symbolic tensors in a functional model; replayed by the tracer."""

    def __init__(self, op_name: str, inputs: list, attrs: dict):
        self.op_name = op_name
        self.inputs = inputs   # KTensors (symbolic, or eager constants)
        self.attrs = attrs
        self.outputs: list = []
        self.name = op_name

    def symbolic_inputs(self) -> list:
        return [t for t in self.inputs if t.is_symbolic]

    def replay(self, lookup, training) -> list:
        out = apply(self.op_name, *[lookup(t) if t.is_symbolic else t for t in self.inputs], **self.attrs)
        return list(out) if isinstance(out, tuple) else [out]


def _apply_symbolic(op_name, tensors, attrs):
    if any(t.is_traced for t in tensors):
        raise ValueError(f"op '{op_name}' mixes a symbolic (functional) tensor with a traced one")
    types = [t.ir_type for t in tensors]
    out_types = get_op(op_name).infer_types(types, attrs, f"op '{op_name}'")
    node = OpNode(op_name, list(tensors), attrs)
    node.outputs = [KTensor(spec=t, history=(node, i)) for i, t in enumerate(out_types)]
    return node.outputs[0] if len(node.outputs) == 1 else tuple(node.outputs)
