"""kc.function: the book's `@tf.function` — a Python step traced once per signature into one stateful graph.

Each call looks up (or traces) a ConcreteFunction for the call's signature: the structure of the
arguments, each tensor's shape and dtype, and the value of every Python scalar or string (those are
static, as in tf.function). Tracing runs the Python function once on traced tensors inside a
StateTrace, so Variables, optimizer slots, metric totals and BatchNormalization statistics become
graph state (see state_trace.py), GradientTape and apply_gradients emit into the same graph
(traced_training.py), and Python side effects happen at trace time only. The graph compiles natively
(compiler.jit, the path fit uses) unless backend="reference"; each call is one native call that
updates the state arrays in place.
"""
from __future__ import annotations

import os
import traceback
import weakref

import numpy as np

from kcompile.ir import GraphBuilder, TensorType, dtype as to_dtype, weight_epoch

from . import tensor as T
from .state_trace import StateTrace, active
from .variables import Variable

_PACKAGE_DIRS = tuple(os.path.dirname(__import__(m, fromlist=["x"]).__file__) + os.sep
                      for m in ("kcompile.frontend.tensor", "kcompile.ir.builder", "kcompile.passes.autodiff",
                                "kcompile.compiler.jit", "kcompile.runtime.reference"))


class TracingError(ValueError):
    """The Python function does something kc.function cannot put in a graph (names the line)."""


class TensorSpec:
    """The shape and dtype of a tensor argument; None in the leading dimension means any batch size."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = T.keras_dtype(dtype)
        self.name = name
        if any(d is None for d in self.shape[1:]):
            raise ValueError(f"TensorSpec{self.shape}: only the leading (batch) dimension may be None; kcompile "
                             "graphs have one symbolic dimension")

    def __repr__(self):
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype!r})"


def function(fn=None, input_signature=None, reduce_retracing=False, jit_compile=None, backend=None,
             autograph=True, name=None):
    """Decorate or wrap `fn` (as tf.function); backend "native" (default) or "reference"."""
    def wrap(f):
        return Function(f, input_signature, reduce_retracing, jit_compile, backend, name)
    return wrap if fn is None else wrap(fn)


class Function:
    """A traced Python function: one ConcreteFunction per call signature, compiled on first use."""

    def __init__(self, fn, input_signature=None, reduce_retracing=False, jit_compile=None, backend=None, name=None):
        self.fn = fn
        self.__name__ = name or getattr(fn, "__name__", "function")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.input_signature = None if input_signature is None else list(input_signature)
        self.reduce_retracing = bool(reduce_retracing)
        self.jit_compile = jit_compile   # accepted as tf.function's; kcompile always compiles the graph
        self.backend = backend
        self.concrete_functions: list = []
        self._bound = weakref.WeakKeyDictionary()

    @property
    def tracing_count(self) -> int:
        return len(self.concrete_functions)

    experimental_get_tracing_count = lambda self: self.tracing_count  # noqa: E731 (tf.function's name)

    @property
    def graph(self):
        return self.concrete_functions[-1].graph if self.concrete_functions else None

    def __get__(self, instance, owner):
        """Decorated methods: one Function per instance, bound to it."""
        if instance is None:
            return self
        bound = self._bound.get(instance)
        if bound is None:
            fn = self.fn.__get__(instance, owner)
            bound = Function(fn, self.input_signature, self.reduce_retracing, self.jit_compile, self.backend,
                             self.__name__)
            self._bound[instance] = bound
        return bound

    def __call__(self, *args, **kwargs):
        if active() is not None:   # called while tracing another kc.function: inlined, as tf.function
            return self.fn(*args, **kwargs)
        concrete, leaves = self._concrete_for(args, kwargs)
        return concrete(leaves)

    def get_concrete_function(self, *args, **kwargs):
        return self._concrete_for(args, kwargs)[0]

    def _concrete_for(self, args, kwargs):
        leaves, tree = flatten((tuple(args), dict(kwargs)))
        sig = [leaf_signature(x) for x in leaves]
        specs = sig if self.input_signature is None else self._signature_specs(tree, sig, args, kwargs)
        for c in self.concrete_functions:
            if c.accepts(tree, sig):
                return c, leaves
        if self.reduce_retracing and self.input_signature is None:
            specs = self._relaxed(tree, sig) or specs
        c = ConcreteFunction(self, tree, specs, leaves, first=not self.concrete_functions)
        self.concrete_functions.append(c)
        return c, leaves

    def _signature_specs(self, tree, sig, args, kwargs):
        expected_leaves, expected_tree = flatten((tuple(self.input_signature), {}))
        if expected_tree != tree or not all(isinstance(s, TensorSpec) for s in expected_leaves):
            raise TypeError(f"kc.function '{self.__name__}' has input_signature {self.input_signature} but was "
                            f"called with {describe(args, kwargs)}")
        specs = []
        for i, (spec, s) in enumerate(zip(expected_leaves, sig)):
            want = ("T", spec.shape, to_dtype(spec.dtype).name)
            if s[0] != "T" or not shape_matches(want[1], s[1]) or want[2] != s[2]:
                raise TypeError(f"kc.function '{self.__name__}': argument {i} should match {spec}, got "
                                f"{describe_leaf(s)}")
            specs.append(want)
        return specs

    def _relaxed(self, tree, sig):
        """reduce_retracing: a leading dimension that changed between calls becomes the batch symbol."""
        for c in self.concrete_functions:
            if c.tree != tree or len(c.specs) != len(sig):
                continue
            relaxed = []
            for old, new in zip(c.specs, sig):
                if old[0] != "T" or new[0] != "T":
                    if old != new:
                        break
                    relaxed.append(new)
                elif old[2] != new[2] or len(old[1]) != len(new[1]) or old[1][1:] != new[1][1:] or not new[1]:
                    break
                else:
                    relaxed.append(("T", (None if old[1][0] != new[1][0] else new[1][0],) + new[1][1:], new[2]))
            else:
                return relaxed
        return None


class ConcreteFunction:
    """One traced graph: its argument specs, its state cells and fed values, and the compiled executor."""

    def __init__(self, owner: Function, tree, specs, leaves, first: bool):
        self.owner, self.tree, self.specs = owner, tree, specs
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in owner.__name__) or "function"
        b = GraphBuilder(name)
        self.ctx = ctx = StateTrace(b, owner.__name__, allow_new_variables=first)
        traced = []
        for i, (x, s) in enumerate(zip(leaves, specs)):
            if s[0] == "T":
                shape = tuple("N" if d is None else d for d in s[1])
                traced.append(T.KTensor(value=b.input(f"arg{i}", TensorType(shape, s[2])), trace=ctx))
            else:
                traced.append(x)
        args, kwargs = unflatten(tree, traced)
        with T.tracing(ctx):
            try:
                out = owner.fn(*args, **kwargs)
            except T.TracedValueError as e:
                raise tracing_error(owner, e) from None
        self._finish(out)

    def _finish(self, out):
        ctx, b = self.ctx, self.ctx.builder
        out_leaves, self.out_tree = flatten(out)
        values, names, self.out_static = [], [], {}
        for i, t in enumerate(out_leaves):
            if isinstance(t, T.KTensor):
                if t.is_traced and t.trace is not ctx:
                    raise TracingError(f"kc.function '{self.owner.__name__}' returned a tensor of another trace")
                values.append(T.traced_value(ctx, t))
                names.append(f"out{i}")
            else:
                self.out_static[i] = t
        self.n_out = len(out_leaves)
        self.written = [c for c in ctx.cells.values() if c.written]
        for c in self.written:
            values.append(c.current)
            names.append(f"state:{c.name}")
        from kcompile.frontend.training.backend import resolve_backend
        self.backend = resolve_backend(self.owner.backend)
        # native code writes parameters (not scalar-state inputs) in place, from computed values only:
        # a value that is another parameter would be read after that one was overwritten
        self.in_place = {c.name for c in self.written if self.backend == "native"
                         and c.param.param_name is not None and c.current.producer is not None}
        b.meta["param_updates"] = {f"state:{n}": n for n in self.in_place}
        self.params = [c for c in ctx.cells.values() if c.param.param_name is not None]
        self.graph = b.build(values, names) if values else None
        self.returned = [n for n in names if not (n.startswith("state:") and n[len("state:"):] in self.in_place)]
        self.execute = self._executor() if values else None

    def _executor(self):
        if self.backend == "native":
            from kcompile.compiler.jit import compile_graph
            self._native, self._bound, self._bound_arrays = compile_graph(self.graph), None, []
            return self._run_native
        from kcompile.runtime import reference
        return lambda inputs: reference.run(self.graph, inputs, {c.name: c.get() for c in self.params})

    def _run_native(self, inputs):
        """One native call with the state arrays bound once (rebound only when one is replaced)."""
        arrays = [self._param_array(c) for c in self.params]
        if self._bound is None or any(a is not b for a, b in zip(arrays, self._bound_arrays)):
            self._bound = self._native.bind({c.name: a for c, a in zip(self.params, arrays)})
            self._bound_arrays = arrays
        return [o.copy() for o in self._bound(inputs)]   # the bound call reuses its output arrays

    def accepts(self, tree, sig) -> bool:
        if tree != self.tree or len(sig) != len(self.specs):
            return False
        for spec, s in zip(self.specs, sig):
            if spec[0] == "T":
                if s[0] != "T" or s[2] != spec[2] or not shape_matches(spec[1], s[1]):
                    return False
            elif spec != s:
                return False
        return True

    def __call__(self, leaves):
        from kcompile.frontend.layers.core import _EagerCounter
        named = {}
        if self.execute is not None:
            inputs = [_input_array(tensor_array(x), v.type.dtype.np) for x, v in zip(self._tensor_leaves(leaves),
                                                                                  self.graph.inputs)]
            inputs += [_input_array(feed(), v.type.dtype.np) for v, feed in self.ctx.feeds]
            named = dict(zip(self.returned, self.execute(inputs)))
        for c in self.written:
            if c.name not in self.in_place:
                _store(c, named[f"state:{c.name}"])
        _EagerCounter.value += self.ctx.random_draws
        outs = [self.out_static[i] if i in self.out_static else T.KTensor(data=named[f"out{i}"])
                for i in range(self.n_out)]
        return unflatten(self.out_tree, outs)

    def _tensor_leaves(self, leaves):
        return [x for x, s in zip(leaves, self.specs) if s[0] == "T"]

    def _param_array(self, c) -> np.ndarray:
        """The cell's array, made C-contiguous of the graph's dtype where native code writes it in place."""
        a = c.get()
        t = c.param.type
        if c.name in self.in_place and not (isinstance(a, np.ndarray) and a.flags.c_contiguous
                                            and a.dtype == t.dtype.np and a.shape == tuple(t.shape)):
            c.set(np.ascontiguousarray(np.asarray(a, dtype=t.dtype.np)))
            a = c.get()
        return a


def _input_array(a, dtype) -> np.ndarray:
    a = np.asarray(a, dtype=dtype)
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _store(cell, value):
    """Write a state output into the cell's own array (its identity stays, so bindings stay valid)."""
    a = cell.get()
    if isinstance(a, np.ndarray) and a.shape == value.shape and a.dtype == value.dtype and a.flags.writeable:
        np.copyto(a, value)
        weight_epoch.bump()   # packed copies of a weight written here (passes/f32_prepack.py) are stale
    else:
        cell.set(value)


# -- argument structure --------------------------------------------------------------------------
def flatten(x):
    """(leaves, tree): tuples, lists and dicts are structure; everything else is a leaf."""
    if isinstance(x, (list, tuple)):
        parts = [flatten(y) for y in x]
        return [l for p in parts for l in p[0]], (type(x).__name__, tuple(p[1] for p in parts))
    if isinstance(x, dict):
        keys = tuple(x)   # insertion order, so returned dicts (the book's logs) print as eagerly
        parts = [flatten(x[k]) for k in keys]
        return [l for p in parts for l in p[0]], ("dict", tuple(keys), tuple(p[1] for p in parts))
    return [x], "*"


def unflatten(tree, leaves):
    return _build(tree, iter(leaves))   # (a recursive closure would keep `leaves` alive in a cycle)


def _build(t, it):
    if t == "*":
        return next(it)
    if t[0] == "dict":
        return {k: _build(s, it) for k, s in zip(t[1], t[2])}
    items = [_build(s, it) for s in t[1]]
    return tuple(items) if t[0] == "tuple" else list(items)


def leaf_signature(x):
    """("T", shape, dtype) for tensors and arrays, ("V", id) for Variables, ("S", value) for Python values."""
    if isinstance(x, Variable):
        return ("V", id(x))
    if isinstance(x, T.KTensor):
        if not x.is_eager:
            raise TracingError(f"kc.function was called with a {'traced' if x.is_traced else 'symbolic'} "
                               "tensor outside its trace")
        return ("T", x.data.shape, T.to_dtype(x.data.dtype).name)
    if isinstance(x, (np.ndarray, np.generic)):
        a = T.to_array(x)
        return ("T", a.shape, T.to_dtype(a.dtype).name)
    try:
        hash(x)
    except TypeError:
        return ("S", type(x).__name__, id(x))
    return ("S", type(x).__name__, x)


def tensor_array(x) -> np.ndarray:
    return x.data if isinstance(x, T.KTensor) else T.to_array(x)


def shape_matches(pattern, shape) -> bool:
    return len(pattern) == len(shape) and all(p is None or p == d for p, d in zip(pattern, shape))


def describe_leaf(s) -> str:
    return f"a tensor {s[2]}{list(s[1])}" if s[0] == "T" else "a Variable" if s[0] == "V" else \
        f"a Python {s[1]} {s[2]!r}"


def describe(args, kwargs) -> str:
    leaves, _ = flatten((tuple(args), dict(kwargs)))
    return f"{len(args)} positional and {len(kwargs)} keyword argument(s): " + \
        ", ".join(describe_leaf(leaf_signature(x)) for x in leaves)


def tracing_error(owner, e) -> TracingError:
    """Name the user's line that needed a traced tensor's value, and what it asked for."""
    frames = traceback.extract_tb(e.__traceback__)
    user = [f for f in frames if not f.filename.startswith(_PACKAGE_DIRS)]
    names = {f.name for f in frames}
    what = ("a Python `if`/`while`/`and`/`or` on a tensor's value (use kc.ops.where)" if "__bool__" in names
            else "float()/int() of a tensor" if names & {"__float__", "__int__"}
            else ".numpy() (or np.asarray) of a tensor")
    where = f"line {user[-1].lineno} of {user[-1].filename} (`{user[-1].line}`)" if user else "the function"
    inner = frames.index(user[-1]) + 1 if user else len(frames)
    if inner < len(frames) and not {"__bool__", "__float__", "__int__", "numpy"} & {frames[inner].name}:
        callee = frames[inner]   # kcompile code with no traced form (e.g. a metric's NumPy update)
        where += f", through kcompile's {os.path.basename(callee.filename)[:-3]}.{callee.name}"
    return TracingError(f"kc.function '{owner.__name__}' cannot be traced: {where} needs {what}, but a traced "
                        f"tensor has no value until the compiled graph runs ({e})")
