"""In-process compilation: compile_graph(graph) -> NativeFunction, cached by graph structure.

The cache key is the graph's printed text (structure, types, attributes, constants; not the
parameter values and not the batch size), so repeated predict/fit calls never recompile.
A call passes each parameter array by pointer (no copy when it is C-contiguous and of the right
dtype) and gets a fresh workspace, so concurrent calls from several threads are safe.
"""
from __future__ import annotations

import ctypes
import os
import threading
from collections import OrderedDict
from typing import Mapping

import numpy as np

from kcompile.ir import Graph, print_graph
from kcompile.ir.signature import check_signature

from .codelib import JITEngine
from .driver import compile_entries

_PTRS = ctypes.POINTER(ctypes.c_void_p)
# <name>_<entry>_p: parameters as a pointer table, so the caller's arrays are used without copying
POINTERS_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int32, _PTRS, _PTRS, _PTRS, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64
ALIGN = 64


class NativeError(RuntimeError):
    """Native code reported a run-time error (e.g. an index out of range)."""


def default_threads() -> int:
    """Threads per call unless the caller says: $KCOMPILE_NUM_THREADS, else 1.

    In-process calls (fit/predict steps) are short, and on a loaded machine waking pool threads
    costs far more than it saves; ask for threads per call (nthreads=) or through the variable.
    """
    env = os.environ.get("KCOMPILE_NUM_THREADS")
    return max(1, int(env)) if env else 1


def aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialized 64-byte-aligned uint8 buffer of nbytes (workspaces need no zeroing)."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


class NativeFunction:
    """A compiled graph: call(inputs, params) -> outputs, like kcompile.runtime.reference.run."""

    def __init__(self, graph: Graph, result, engine: JITEngine, kind: str = "forward"):
        self.graph = graph
        self.result = result
        self._engine = engine  # owns the machine code
        native = result.module
        self._fn = POINTERS_CFUNC(engine.address(native.symbol(kind) + "_p"))
        self._ws = native.workspace[kind]
        self._slots = native.params
        self._slot_by_name = {s.name: s for s in self._slots}
        self._kind = kind
        self._defaults = {name: self._checked(name, a) for name, a in graph.param_values.items()
                          if name in self._slot_by_name}
        self.status_messages = native.status_messages
        self.threads_bound = _bind_threads(engine)

    @property
    def timings(self) -> dict:
        return self.result.timings

    def workspace_bytes(self, batch: int) -> int:
        return self._ws[0] * batch + self._ws[1]

    def _checked(self, name: str, value) -> np.ndarray:
        """The parameter as a C-contiguous array of its type (no copy when it already is one)."""
        s = self._slot_by_name[name]
        a = np.asarray(value)
        if a.shape != tuple(s.shape) or a.dtype != s.dtype.np:
            raise ValueError(f"graph @{self.graph.name}: parameter '{s.name}' expects "
                             f"{s.dtype.name}{list(s.shape)}, got {a.dtype}{list(a.shape)}")
        return np.ascontiguousarray(a)

    def _param_arrays(self, params: Mapping | None) -> list:
        given = {k: self._checked(k, v) for k, v in (params or {}).items() if k in self._slot_by_name}
        arrays = [given.get(s.name, self._defaults.get(s.name)) for s in self._slots]
        missing = [s.name for s, a in zip(self._slots, arrays) if a is None]
        if missing:
            raise ValueError(f"graph @{self.graph.name}: no value for parameters {missing}")
        return arrays

    def with_graph(self, graph: Graph) -> "NativeFunction":
        """The same code for a structurally equal graph (its own default parameter values)."""
        return NativeFunction(graph, self.result, self._engine, self._kind)

    def __call__(self, inputs, params: Mapping | None = None, batch: int | None = None,
                 nthreads: int | None = None) -> list:
        arrays, found = check_inputs(self.graph, inputs)
        batch = found if found is not None else (0 if batch is None else int(batch))
        weights = self._param_arrays(params)  # referenced until the call returns
        updates = self.graph.meta.get("param_updates", {})
        outs = [np.empty(v.type.concrete_shape(batch), v.type.dtype.np)
                for v, name in zip(self.graph.outputs, self.graph.output_names) if name not in updates]
        ws = aligned_empty(self.workspace_bytes(batch))
        in_ptrs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        out_ptrs = (ctypes.c_void_p * max(1, len(outs)))(*[o.ctypes.data for o in outs])
        param_ptrs = (ctypes.c_void_p * max(1, len(weights)))(*[w.ctypes.data for w in weights])
        status = self._fn(in_ptrs, out_ptrs, param_ptrs, ws.ctypes.data, batch, nthreads or default_threads())
        if status:
            raise NativeError(f"graph @{self.graph.name}: {self.status_messages.get(status, f'status {status}')}")
        return outs


def check_inputs(graph: Graph, inputs) -> tuple:
    """Match inputs (list, or dict by name) to the graph's signature; returns C-contiguous arrays, batch.

    Dtypes that convert same-kind are cast (others raise a TypeError); a dict may hold extra names.
    """
    signature = [(v.name, v.type) for v in graph.inputs]
    arrays, batch = check_signature(f"graph @{graph.name}", signature, inputs, convert=True, allow_unexpected=True)
    return [np.ascontiguousarray(a) for a in arrays], batch


def _bind_threads(engine: JITEngine) -> bool:
    try:
        from .threads import bind_thread_launcher
    except ImportError:
        return False
    return bind_thread_launcher(engine.global_address)


def compile_graph(graph: Graph, opt_level: int = 3, target=None) -> NativeFunction:
    """Compile `graph` for this machine (cached by structure); the result runs any batch size.
    target: a narrower target than the host's (e.g. host_target().without("avx512f")) for tests."""
    updates = tuple(sorted(graph.meta.get("param_updates", {}).items()))
    key = (print_graph(graph), updates, opt_level, target)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit if hit.graph is graph else hit.with_graph(graph)
    result = compile_entries({"forward": graph}, _symbol(graph.name), opt_level, target=target)
    fn = NativeFunction(graph, result, result.library.jit(result.module.libraries))
    with _CACHE_LOCK:
        _CACHE[key] = fn
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return fn


def _symbol(name: str) -> str:
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "graph"
    return s if not s[0].isdigit() else "g_" + s


def compile_artifact(graph: Graph, outdir, name: str | None = None, train_step: Graph | None = None,
                     opt_level: int = 3):
    """Write an AOT artifact directory (see compiler/artifact.py); returns its path."""
    from .artifact import write_artifact
    return write_artifact(graph, outdir, name or _symbol(graph.name), train_step=train_step, opt_level=opt_level)
