"""GradientTape, kc.function, kc.grad and kc.value_and_grad: symbolic gradients of eager code.

The tape appends itself to frontend.tensor.RECORDERS and keeps every op executed eagerly inside
it. `gradient` rebuilds those ops as an ir.Graph (recorded leaves become graph inputs), emits the
backward pass with passes.autodiff.backprop, and evaluates it. When another tape is recording
(nested tapes), the gradient graph is replayed op by op through tensor.apply, so the outer tape
records the gradient computation and can differentiate it again (second order).
"""
from __future__ import annotations

import numpy as np

from kcompile.frontend import tensor as T
from kcompile.frontend.variables import Variable
from kcompile.ir import GraphBuilder, TensorType, Value
from kcompile.passes.autodiff import backprop


class GradientTape:
    """Records eager ops; `gradient(target, sources)` differentiates them symbolically."""

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = persistent
        self.watch_accessed_variables = watch_accessed_variables
        self._ops: list = []        # (op, inputs, attrs, outputs)
        self._watched: dict = {}    # id -> KTensor
        self._used = False
        self._recording = False

    def __enter__(self):
        T.RECORDERS.append(self)
        self._recording = True
        return self

    def __exit__(self, *exc):
        self._stop()

    def _stop(self):
        if self._recording:
            T.RECORDERS.remove(self)
            self._recording = False

    def watch(self, tensor):
        """Track a tensor (or nested list of tensors) that is not a trainable Variable."""
        for t in _flatten(tensor):
            if not isinstance(t, T.KTensor):
                raise ValueError(f"GradientTape.watch expects tensors, got {type(t).__name__}; convert NumPy "
                                 "arrays with kc.ops.convert_to_tensor first")
            self._watched[id(t)] = t

    def record(self, op_name, inputs, attrs, outputs):
        self._ops.append((op_name, inputs, attrs, outputs))

    def reset(self):
        self._ops.clear()
        self._watched.clear()

    def watched_variables(self):
        seen = {}
        for _, inputs, _, _ in self._ops:
            for t in inputs:
                if isinstance(t, Variable) and self._is_watched(t):
                    seen[id(t)] = t
        return list(seen.values())

    def _is_watched(self, t) -> bool:
        if id(t) in self._watched:
            return True
        return isinstance(t, Variable) and t.trainable and self.watch_accessed_variables

    # -- gradients -------------------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d target / d sources (sum over target elements); None for unconnected sources."""
        if self._used and not self.persistent:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one set of "
                               "gradients (or jacobians); create it with persistent=True")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"unconnected_gradients must be 'none' or 'zero', got {unconnected_gradients!r}")
        self._used = True
        flat_sources = _flatten(sources)
        ctx = _state_trace_of(_flatten(target))
        if ctx is not None:   # inside kc.function: the gradient is emitted into the traced graph
            from kcompile.frontend.traced_training import traced_gradient
            grads = traced_gradient(self, ctx, _flatten(target), flat_sources, output_gradients, unconnected_gradients)
            return _unflatten(sources, grads)
        replay = any(r is not self for r in T.RECORDERS)
        grads = None
        if not replay and output_gradients is None:   # a repeated step runs a compiled gradient (eager_native)
            from kcompile.frontend.eager_native import cached_gradients
            grads = cached_gradients(self, _flatten(target), flat_sources)
        if grads is None:
            recorded = _RecordedGraph(self._ops)
            grads = recorded.gradients(_flatten(target), flat_sources, output_gradients, self._is_watched,
                                       replay=replay, exclude=self)
        if unconnected_gradients == "zero":
            grads = [T.KTensor(data=np.zeros_like(s.numpy())) if g is None else g
                     for g, s in zip(grads, flat_sources)]
        return _unflatten(sources, grads)


def _state_trace_of(targets):
    from kcompile.frontend.state_trace import StateTrace
    traced = [t for t in targets if isinstance(t, T.KTensor) and t.is_traced]
    return traced[0].trace if traced and isinstance(traced[0].trace, StateTrace) else None


class _RecordedGraph:
    """The tape's ops rebuilt as IR: leaves become inputs, op outputs map to Values."""

    def __init__(self, ops):
        self.b = GraphBuilder("tape")
        self.value_of: dict = {}     # id(KTensor) -> Value
        self.leaves: list = []       # (Value, KTensor, data at record time)
        self.keep: list = []         # hold recorded tensors so their ids stay unique
        for op_name, inputs, attrs, outputs in ops:
            values = [self._value(t) for t in inputs]
            out = self.b.op(op_name, *values, **attrs)
            for t, v in zip(outputs, out if isinstance(out, tuple) else (out,)):
                self.value_of[id(t)] = v
            self.keep.append((inputs, outputs))

    def _value(self, t) -> Value:
        v = self.value_of.get(id(t))
        if v is None:
            v = self.b.input(f"leaf{len(self.leaves)}", t.ir_type)
            self.value_of[id(t)] = v
            self.leaves.append((v, t, t.data))
        return v

    def gradients(self, targets, sources, output_gradients, is_watched, replay, exclude):
        graph, positions = self.gradient_graph(targets, sources, output_gradients, is_watched)
        if graph is None:
            return [None] * len(sources)
        results = _replay(graph, self.leaves, exclude) if replay else _evaluate(graph, self.leaves)
        return [None if p is None else results[p] for p in positions]

    def gradient_graph(self, targets, sources, output_gradients, is_watched):
        """(graph of the gradients over all leaves, each source's output index or None); (None, None) if none."""
        ys = [self.value_of.get(id(t)) for t in targets]
        if any(y is None for y in ys):
            return None, None  # a target that was not computed on the tape: nothing connects
        wrt = [self._source_value(s, is_watched) for s in sources]
        live = [w for w in wrt if w is not None and w.dtype.is_float and _depends(ys, w)]
        if not live:
            return None, None
        y, dy = self._seed(ys, output_gradients)
        graph = _pruned(self.b, backprop(self.b, y, live, dy))
        index = {id(w): i for i, w in enumerate(live)}
        return graph, [None if w is None else index.get(id(w)) for w in wrt]

    def _source_value(self, s, is_watched):
        """Watched leaves, and intermediate tensors computed on the tape (as TF), can be differentiated."""
        v = self.value_of.get(id(s)) if isinstance(s, T.KTensor) else None
        if v is None or (v.producer is None and not is_watched(s)):
            return None
        return v

    def _seed(self, ys, output_gradients):
        """One scalar to differentiate (TF sums several targets and non-scalar ones)."""
        if output_gradients is not None:
            cts = [_as_array(g) for g in _flatten(output_gradients)]
            parts = [self.b.reduce_sum(self.b.mul(y, self.b.constant(c.astype(y.dtype.np)))) for y, c in zip(ys, cts)]
        else:
            parts = [y if y.type.shape == () else self.b.reduce_sum(y) for y in ys]
        total = parts[0]
        for p in parts[1:]:
            total = self.b.add(total, p)
        return total, None


def _pruned(b: GraphBuilder, outputs):
    """The graph of `outputs` with only the nodes they need (a tape holds much more)."""
    needed, stack = set(), list(outputs)
    while stack:
        v = stack.pop()
        node = v.producer
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.inputs)
    from kcompile.ir import Graph
    nodes = [n for n in b.nodes if id(n) in needed]
    return Graph("tape_gradient", b.inputs, b.params, nodes, outputs, b.param_values,
                 [f"grad{i}" for i in range(len(outputs))])


def _depends(ys, w: Value) -> bool:
    stack, seen = [y for y in ys], set()
    while stack:
        v = stack.pop()
        if v is w:
            return True
        if v.producer is not None and id(v) not in seen:
            seen.add(id(v))
            stack.extend(v.producer.inputs)
    return False


def _evaluate(graph, leaves):
    from kcompile.runtime import reference
    feed = {v: data for v, _, data in leaves}
    outs = reference.run(graph, [feed[v] for v in graph.inputs])
    return [T.KTensor(data=o) for o in outs]


def _replay(graph, leaves, exclude):
    """Evaluate op by op through tensor.apply so that other active tapes record the computation."""
    env = {v: t for v, t, _ in leaves}
    paused = exclude in T.RECORDERS
    if paused:
        T.RECORDERS.remove(exclude)
    try:
        for node in graph.nodes:
            out = T.apply(node.op, *[env[v] for v in node.inputs], **node.attrs)
            for v, t in zip(node.outputs, out if isinstance(out, tuple) else (out,)):
                env[v] = t
    finally:
        if paused:
            T.RECORDERS.append(exclude)
    return [env[v] for v in graph.outputs]


# -- kc.function, kc.grad, kc.value_and_grad ---------------------------------------------------
class function:
    """Trace a Python function of tensors into an ir.Graph (once per input signature) and run it."""

    def __init__(self, fn, backend="reference"):
        self.fn = fn
        self.backend = backend
        self._cache: dict = {}
        self.graph = None

    def get_graph(self, *args):
        return self._traced(args)[0]

    def _traced(self, args):
        arrays = [_as_array(a) for a in args]
        key = tuple((a.shape, a.dtype.str) for a in arrays)
        if key not in self._cache:
            self._cache[key] = self._trace(arrays)
        self.graph = self._cache[key][0]
        return self._cache[key]

    def _trace(self, arrays):
        b = GraphBuilder(getattr(self.fn, "__name__", "function").strip("<>") or "function")
        ctx = T.TraceContext(b)
        inputs = [b.input(f"arg{i}", TensorType(a.shape, a.dtype)) for i, a in enumerate(arrays)]
        with T.tracing(ctx):
            out = self.fn(*[T.KTensor(value=v, trace=ctx) for v in inputs])
        outs = [T.traced_value(ctx, T.convert_to_tensor(o)) for o in _flatten(out)]
        return self._finish(b, ctx, outs, out), ctx

    def _finish(self, b, ctx, outs, structure):
        graph = b.build(outs)
        graph.meta["structure"] = structure
        return graph

    def __call__(self, *args):
        graph, ctx = self._traced(args)
        from kcompile.frontend.training.backend import make_executor
        params = {path: var.value_array for path, var in ctx.variables.items()}
        outs = make_executor(graph, self.backend)([_as_array(a) for a in args], params)
        tensors = [T.KTensor(data=o) for o in outs]
        return _unflatten(graph.meta["structure"], tensors)


class _GradFunction(function):
    """fn's gradient with respect to the arguments in argnums, as a graph (`.graph`)."""

    def __init__(self, fn, argnums=0, has_aux=False, with_value=False, backend="reference"):
        super().__init__(fn, backend)
        self.argnums = argnums
        self.has_aux = has_aux
        self.with_value = with_value

    def _finish(self, b, ctx, outs, structure):
        value, aux = (outs[0], outs[1:]) if self.has_aux else (outs[0], [])
        if value.type.shape != () and value.type.numel() != 1:
            raise ValueError(f"grad: the function must return a scalar, got {value.type}")
        nums = (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)
        grads = backprop(b, value, [b.inputs[i] for i in nums])
        graph = b.build([value] + aux + grads)
        graph.meta["structure"] = ("grad", len(aux), isinstance(self.argnums, int))
        return graph

    def __call__(self, *args):
        if any(isinstance(a, T.KTensor) and a.is_traced for a in args):
            return self._package(*self._inline(args))
        graph, ctx = self._traced(args)
        from kcompile.frontend.training.backend import make_executor
        params = {path: var.value_array for path, var in ctx.variables.items()}
        outs = [T.KTensor(data=o) for o in make_executor(graph, self.backend)([_as_array(a) for a in args], params)]
        n_aux = graph.meta["structure"][1]
        return self._package(outs[0], outs[1:1 + n_aux], outs[1 + n_aux:])

    def _inline(self, args):
        """Called on traced tensors (kc.grad(kc.grad(f)), or inside kc.function): emit the gradient into
        the active trace, so an outer transformation differentiates it again."""
        ctx = next(a.trace for a in args if isinstance(a, T.KTensor) and a.is_traced)
        args = [a if isinstance(a, T.KTensor) else T.convert_to_tensor(a) for a in args]
        with T.tracing(ctx):
            outs = [T.convert_to_tensor(o) for o in _flatten(self.fn(*args))]
        value = T.traced_value(ctx, outs[0])
        if value.type.shape != () and value.type.numel() != 1:
            raise ValueError(f"grad: the function must return a scalar, got {value.type}")
        nums = (self.argnums,) if isinstance(self.argnums, int) else tuple(self.argnums)
        grads = backprop(ctx.builder, value, [T.traced_value(ctx, args[i]) for i in nums])
        return (T.KTensor(value=value, trace=ctx), outs[1:] if self.has_aux else [],
                [T.KTensor(value=g, trace=ctx) for g in grads])

    def _package(self, value, aux, grads):
        grads = grads[0] if isinstance(self.argnums, int) else tuple(grads)
        if self.has_aux:
            value = (value, aux[0] if len(aux) == 1 else tuple(aux))
        return (value, grads) if self.with_value else (grads, value[1]) if self.has_aux else grads


def grad(fn, argnums=0, has_aux=False):
    """A function returning d fn / d args[argnums], computed by a symbolic gradient graph (`.graph`)."""
    return _GradFunction(fn, argnums, has_aux, with_value=False)


def value_and_grad(fn, argnums=0, has_aux=False):
    """A function returning (fn(*args), d fn / d args[argnums]); the graph is `.graph`."""
    return _GradFunction(fn, argnums, has_aux, with_value=True)


# -- helpers -----------------------------------------------------------------------------------
def _as_array(x) -> np.ndarray:
    if isinstance(x, T.KTensor):
        return x.numpy()
    return T.to_array(x)


def _flatten(x) -> list:
    if isinstance(x, (list, tuple)):
        return [y for item in x for y in _flatten(item)]
    if isinstance(x, dict):
        return [y for k in sorted(x) for y in _flatten(x[k])]
    return [x]


def _unflatten(structure, flat):
    # no recursive closure: its reference cycle would keep `flat` (the gradients) alive until the next
    # garbage collection, and compiled eager steps reuse an output array only once nobody holds it
    return _build(structure, iter(flat))


def _build(s, it):
    if isinstance(s, (list, tuple)):
        return type(s)(_build(x, it) for x in s)
    if isinstance(s, dict):
        return {k: _build(s[k], it) for k in sorted(s)}
    return next(it)
