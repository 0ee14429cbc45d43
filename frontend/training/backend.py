"""The one place graphs are executed from the front end: reference interpreter or native JIT."""
from __future__ import annotations

import contextlib

from kcompile.frontend import config

# A loop of at least this many native calls (fit's steps, predict's and evaluate's batches) compiles
# its code optimized before the first call instead of tiered (compiler/tier_up.py): at ~3 ms lost per
# tier-0 MLP step against ~0.4 s of compile saved, tiering pays below ~100 steps.
LONG_RUN_STEPS = 100


def resolve_backend(backend: str | None) -> str:
    """The backend asked for, else the configured default (native when the JIT exists)."""
    name = backend if backend is not None else config.backend()
    if name not in config.BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(config.BACKENDS)}")
    if name == "native" and not config.native_available():
        raise RuntimeError("backend 'native' was requested but kcompile.compiler.jit.compile_graph is not "
                           "available; use backend='reference'")
    return name


def long_run(steps: int):
    """A context for a loop of `steps` native calls: long loops compile optimized code first."""
    if steps < LONG_RUN_STEPS:
        return contextlib.nullcontext()
    from kcompile.compiler.tier_up import optimized_first
    return optimized_first()


def make_executor(graph, backend: str | None = None):
    """callable(inputs: list[np.ndarray], params: dict[path -> np.ndarray]) -> list[np.ndarray]."""
    name = resolve_backend(backend)
    if name == "reference":
        from kcompile.runtime import reference

        def run_reference(inputs, params):
            return reference.run(graph, inputs, params)
        run_reference.backend = "reference"
        return run_reference
    from kcompile.compiler.dynamic_dims import DynamicDimError
    from kcompile.compiler.jit import compile_graph
    dynamic = any(v.type.dynamic_dims for v in graph.inputs)
    if dynamic and config.dynamic_lengths() == "per-length":
        return PerLengthExecutor(graph)
    try:
        return compile_graph(graph)  # a compile failure raises: never a silent fallback ...
    except DynamicDimError:
        if not dynamic:
            raise
        return PerLengthExecutor(graph)   # ... except this one: an op that needs a static length T


class PerLengthExecutor:
    """Native code for a graph with symbolic non-batch dimensions (Input(shape=(None, F))) that reach
    an op whose native code needs static sizes (compiler/dynamic_dims.py), or when asked for
    (kc.config.set_dynamic_lengths("per-length")): the graph is specialized to each sequence length
    the inputs bring and compiled once per length (the JIT caches by structure); the IR stays one."""

    backend = "native"

    def __init__(self, graph):
        self.graph = graph
        self._fns: dict = {}   # ((symbol, size), ...) -> NativeFunction

    def function(self, inputs):
        from kcompile.compiler.jit import compile_graph
        from kcompile.ir.signature import check_signature
        from kcompile.passes.specialize import specialize_dims
        dims: dict = {}
        signature = [(v.name, v.type) for v in self.graph.inputs]
        check_signature(f"graph @{self.graph.name}", signature, inputs, convert=True, allow_unexpected=True,
                        dims=dims)
        key = tuple(sorted(dims.items()))
        if key not in self._fns:
            self._fns[key] = compile_graph(specialize_dims(self.graph, dims))
        return self._fns[key]

    def __call__(self, inputs, params=None, **kwargs):
        return self.function(inputs)(inputs, params, **kwargs)

    def bind(self, params):
        return _BoundPerLength(self, params)


class _BoundPerLength:
    """PerLengthExecutor.bind: one BoundCall per length, all over the same parameter arrays."""

    def __init__(self, executor: PerLengthExecutor, params):
        self.executor, self.params, self._bound = executor, params, {}

    def __call__(self, inputs, nthreads=None):
        fn = self.executor.function(inputs)
        bound = self._bound.get(id(fn))
        if bound is None:
            bound = self._bound[id(fn)] = fn.bind(self.params)
        return bound(inputs, nthreads)
