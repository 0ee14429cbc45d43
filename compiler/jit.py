"""In-process compilation: compile_graph(graph) -> NativeFunction, cached by graph structure.

The cache key is the graph's printed text (structure, types, attributes, constants; not the
parameter values and not the batch size), so repeated predict/fit calls never recompile.
A call passes each parameter array by pointer (no copy when it is C-contiguous and of the right
dtype) and gets a fresh workspace, so concurrent calls from several threads are safe.

Parameters named in graph.meta["param_updates"] are updated in place, in the caller's arrays:
`bind(params)` fixes those arrays once and returns a BoundCall, the training loop's step, which
reuses its pointer table, workspace and output buffers from call to call.
"""
from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from typing import Mapping

import numpy as np

from kcompile.ir import Graph, print_graph
from kcompile.ir.call_plan import PACKED_CFUNC, CallPlan, aligned_empty
from kcompile.ir.ops.collective import take_failure
from kcompile.ir.ops.sparse import check_structure, sparse_weights
from kcompile.ir.signature import check_lengths, check_signature
from kcompile.ir.thread_budget import get_num_threads
from kcompile.ir import f32_panels, weight_epoch
from kcompile.ir.thread_tuner import ThreadTuner
from kcompile.passes import int8_prepack

from .disk_cache import DiskCache
from .codegen import PACKED_SUFFIX
from .gather_entry import ARGS as GATHERED_ARGS, GATHERED_SUFFIX, RECORD as RECORD_WORDS
from .driver import Compilation, CompileOptions, c_symbol

_PTRS = ctypes.POINTER(ctypes.c_void_p)
# <name>_<entry>_p: parameters as a pointer table, so the caller's arrays are used without copying
POINTERS_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int32, _PTRS, _PTRS, _PTRS, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32)
# ... with a dynamic length T: one more argument, every input's dims (compiler/dynamic_dims.py)
DYNAMIC_POINTERS_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int32, _PTRS, _PTRS, _PTRS, ctypes.c_void_p, ctypes.c_int64,
                                          ctypes.c_int32, ctypes.POINTER(ctypes.c_int64))
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


class NativeError(RuntimeError):
    """Native code reported a run-time error (e.g. an index out of range)."""


def default_threads() -> int:
    """Threads a call is offered unless the caller says (ir/thread_budget.py): kc.set_num_threads,
    else $KCOMPILE_NUM_THREADS, else the machine's cores; each kernel's cost model then decides how
    many of them its work is worth (a batch-1 call stays on the calling thread)."""
    return get_num_threads()


def _pointers(arrays) -> ctypes.Array:
    return (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])


class NativeFunction:
    """A compiled graph: call(inputs, params) -> outputs, like kcompile.runtime.reference.run."""

    def __init__(self, graph: Graph, compilation: Compilation, kind: str = "forward"):
        self.graph = graph
        self.compilation = compilation
        native = compilation.interface
        self._engine = compilation.engine  # owns the machine code
        self.dynamic = any(v.type.dynamic_dims for v in graph.inputs)   # the entry takes input_shapes
        self._symbol_p = native.symbol(kind) + "_p"
        cfunc = DYNAMIC_POINTERS_CFUNC if self.dynamic else POINTERS_CFUNC
        self._fn = cfunc(self._engine.address(self._symbol_p))
        self._ws = native.workspace[kind]
        self._slots = native.params
        self._slot_by_name = {s.name: s for s in self._slots}
        self._kind = kind
        self.in_place = set(graph.meta.get("param_updates", {}).values())
        self._defaults = {name: self._checked(name, a) for name, a in graph.param_values.items()
                          if name in self._slot_by_name and name not in self.in_place}
        self._packed = PackedWeights(self._slots)
        self._outputs = [v for v, name in zip(graph.outputs, graph.output_names)
                         if name not in graph.meta.get("param_updates", {})]
        self._sparse = sparse_weights(graph)
        self._check_sparse(self._defaults)
        self.status_messages = native.status_messages
        self.tuner = ThreadTuner()   # the thread count that helps, per batch size (calls without nthreads=)
        self._default_plans: dict = {}   # nthreads -> CallPlan over the defaults (calls without params=)
        # one-argument entries for a bound step's loop (BoundCall.run_filled, run_gathered): an argument
        # block built once per batch size costs less per call than six ctypes conversions
        self._packed_fn = None if self.dynamic else PACKED_CFUNC(self._engine.address(self._symbol_p + PACKED_SUFFIX))
        self._gathered_fn = (PACKED_CFUNC(self._engine.address(self._symbol_p + GATHERED_SUFFIX))
                             if self.in_place and not self.dynamic else None)   # (train steps: gather_entry.py)
        _bind_threads(self._engine)
        self._engine.on_publish(self.tuner.retune)   # tier 0's timings do not hold for tier 1 (tier_up.py)

    def workspace_bytes(self, batch: int, dims: dict | None = None) -> int:
        """A*N + B, plus the terms in the dynamic lengths (e.g. C*N*T) when the graph has them."""
        sizes = {**(dims or {}), "N": batch}
        extra = 0
        for symbols, coeff in (self._ws[2] if len(self._ws) > 2 else ()):
            term = coeff
            for d in symbols:
                term *= sizes[d]
            extra += term
        return self._ws[0] * batch + self._ws[1] + extra

    def _checked(self, name: str, value) -> np.ndarray:
        """The parameter as a C-contiguous array of its type (no copy when it already is one).

        A parameter updated in place must already be such an array, and writeable: a converted
        copy would take the update and the caller would never see it."""
        s = self._slot_by_name[name]
        a = np.asarray(value)
        if a.shape != tuple(s.shape) or a.dtype != s.dtype.np:
            raise ValueError(f"graph @{self.graph.name}: parameter '{s.name}' expects "
                             f"{s.dtype.name}{list(s.shape)}, got {a.dtype}{list(a.shape)}")
        if name in self.in_place and (a is not value or not a.flags.c_contiguous or not a.flags.writeable):
            raise ValueError(f"graph @{self.graph.name}: parameter '{s.name}' is updated in place, so it must "
                             "be given as a writeable C-contiguous NumPy array of its dtype")
        return np.ascontiguousarray(a)

    def _check_sparse(self, arrays: dict) -> None:
        """Index arrays of sparse kernels must be in range before native code reads through them."""
        for s in self._sparse:
            if s["index"] in arrays or s["offsets"] in arrays:
                index = arrays.get(s["index"], self._defaults.get(s["index"]))
                offsets = arrays.get(s["offsets"], self._defaults.get(s["offsets"]))
                if index is not None and offsets is not None:
                    try:
                        check_structure(index, offsets, s["shape"][0], s["block"], s.get("layout", "blocks"),
                                        s["shape"][1])
                    except ValueError as e:
                        raise ValueError(f"graph @{self.graph.name}: sparse weight '{s['name']}': {e}") from None

    def _param_arrays(self, params: Mapping | None) -> list:
        given = {k: self._checked(k, v) for k, v in (params or {}).items()
                 if k in self._slot_by_name and not self._packed.derived(k)}
        self._check_sparse(given)
        arrays = [given.get(s.name, self._defaults.get(s.name)) for s in self._slots]
        self._packed.fill(self._slots, arrays)
        missing = [s.name for s, a in zip(self._slots, arrays) if a is None]
        if missing:
            updated = sorted(set(missing) & self.in_place)
            why = f" ({updated} are updated in place: pass their arrays)" if updated else ""
            raise ValueError(f"graph @{self.graph.name}: no value for parameters {missing}{why}")
        return arrays

    def with_graph(self, graph: Graph) -> "NativeFunction":
        """The same code for a structurally equal graph (its own default parameter values)."""
        return NativeFunction(graph, self.compilation, self._kind)

    def _run(self, in_ptrs, out_ptrs, param_ptrs, ws, batch: int, nthreads: int, shapes=None) -> None:
        """One call with `nthreads` threads (from ThreadTuner.call: the budget's share)."""
        extra = (shapes,) if self.dynamic else ()
        status = self._fn(in_ptrs, out_ptrs, param_ptrs, ws.ctypes.data, batch, nthreads, *extra)
        if self.in_place:
            weight_epoch.bump()   # weights were written: packed copies made before are stale
        if status:
            self._raise_status(status)

    def _run_block(self, entry, block, block_address: int, nthreads: int) -> None:
        """One call of a one-argument entry (the packed one, or the gathered one) on an argument block
        (BoundCall.run_filled's and run_gathered's)."""
        block[5] = nthreads
        status = entry(block_address)
        if self.in_place:
            weight_epoch.bump()
        if status:
            self._raise_status(status)

    def __call__(self, inputs, params: Mapping | None = None, batch: int | None = None,
                 nthreads: int | None = None) -> list:
        if not params and batch is None and type(inputs) in (list, tuple):
            plan = self._default_plans.get(nthreads)
            if plan is None:
                plan = self._default_plans[nthreads] = self._default_plan(nthreads)
            outs = plan(inputs) if plan else None   # None: not exact arrays; the checked path converts or explains
            if outs is not None:
                return outs
        dims: dict = {}
        arrays, found = check_inputs(self.graph, inputs, dims)
        batch = found if found is not None else (0 if batch is None else int(batch))
        weights = self._param_arrays(params)  # referenced until the call returns
        outs = [np.empty(v.type.concrete_shape(batch, dims), v.type.dtype.np) for v in self._outputs]
        ws = aligned_empty(self.workspace_bytes(batch, dims))
        shapes = input_shapes(arrays) if self.dynamic else None
        key = (batch, tuple(sorted(dims.items()))) if dims else batch   # tuned per batch (and length)
        with self.tuner.call(key, nthreads) as n:
            self._run(_pointers(arrays), _pointers(outs), _pointers(weights), ws, batch, n, shapes)
        return outs

    def plan(self, params: Mapping | None = None, nthreads: int | None = None) -> CallPlan | None:
        """The fast call path (ir/call_plan.py) with these parameter arrays bound, or None where it does
        not apply (an input or output without the batch dimension, parameters updated in place, a
        dynamic length).

        The plan keeps the arrays it was given: the caller must make a new plan when a parameter's
        array is replaced (the front end does, by a version counter on its Variables)."""
        if (self.in_place or self.dynamic
                or not all(v.type.has_batch for v in [*self.graph.inputs, *self._outputs])):
            return None
        weights = self._param_arrays(params)
        table = _pointers(weights)
        return CallPlan(self._engine.address(self._symbol_p + PACKED_SUFFIX),
                        [(v.type.dtype.np, v.type.shape[1:]) for v in self.graph.inputs],
                        [(v.type.dtype.np, v.type.shape[1:]) for v in self._outputs],
                        ctypes.addressof(table), tuple(self._ws[:2]), nthreads, self._raise_status,
                        keep=(table, weights, self._engine), tuner=self.tuner,
                        packs=self._packed.refresher(weights))

    def _default_plan(self, nthreads):
        """A CallPlan over the default parameters (fixed for this function's life), or False."""
        try:
            return self.plan(None, nthreads) or False
        except ValueError:   # a parameter without a default: every call must pass it
            return False

    def _raise_status(self, status: int):
        failure = take_failure()   # an exception from cross_process_sum's hook: raise it as it was
        if failure is not None:
            raise failure
        raise NativeError(f"graph @{self.graph.name}: {self.status_messages.get(status, f'status {status}')}")

    def bind(self, params: Mapping) -> "BoundCall":
        """This function with its parameter arrays fixed (see BoundCall)."""
        return BoundCall(self, self._param_arrays(params))


class PackedWeights:
    """The packed copies of weights (passes/int8_prepack.py, passes/f32_prepack.py), derived from the
    weight arrays a call uses: packed once per array object and kept while that object is the one
    passed, so a new array (Variable.assign, set_weights, another `params` value) is packed anew.
    f32 weights are also written in place by native training steps: their copies are keyed on the
    weight epoch too (ir/weight_epoch.py), and a plan's copies are repacked in place when it moves
    (f32_panels.Repacker). int8 weights are never trained in place."""

    def __init__(self, slots):
        self._specs = {}                # packed name -> (source name, packer(name, src, out=None), trained in place?)
        for s in slots:
            if int8_prepack.parse_packed_name(s.name) is not None:
                self._specs[s.name] = (int8_prepack.parse_packed_name(s.name)[0],
                                       lambda name, src, out=None: int8_prepack.packed_value(name, src), False)
            elif f32_panels.parse_packed_name(s.name) is not None:
                self._specs[s.name] = (f32_panels.parse_packed_name(s.name)[0], f32_panels.packed_value, True)
        self._shapes = {s.name: tuple(s.shape) for s in slots}
        self._index = {s.name: k for k, s in enumerate(slots)}
        self._cache: dict = {}          # packed name -> (source array, packed array, weight epoch)
        self._lock = threading.Lock()

    def derived(self, name: str) -> bool:
        return name in self._specs

    def fill(self, slots, arrays: list) -> None:
        """Put each packed copy into `arrays` (slot order), packing where its source array is new."""
        epoch = weight_epoch.current
        for name, (source, pack, trained) in self._specs.items():
            src = arrays[self._index[source]]
            if src is None:
                continue
            hit = self._cache.get(name)
            if hit is None or hit[0] is not src or (trained and hit[2] != epoch):
                hit = (src, pack(name, src), epoch)
                if hit[1].shape != self._shapes[name]:   # the code reads exactly this many elements
                    raise ValueError(f"packed weight '{name}': {hit[1].shape} elements, the code expects "
                                     f"{self._shapes[name]}")
                with self._lock:
                    self._cache[name] = hit
            arrays[self._index[name]] = hit[1]

    def refresher(self, arrays: list):
        """A Repacker (ir/f32_panels.py) over a plan's arrays (slot order, filled), or None when none can go stale."""
        pairs = [(arrays[self._index[source]], arrays[self._index[name]], name)
                 for name, (source, _, trained) in self._specs.items() if trained]
        return f32_panels.Repacker(pairs) if pairs else None


class BoundCall:
    """A NativeFunction with its parameter arrays bound once, for a loop of steps on one thread
    (with the thread count that helps: ir/thread_tuner.py).

    The parameter pointer table is built once; the workspace and the output arrays are kept per
    batch size and reused, so a call allocates nothing: the outputs it returns are overwritten by
    the next call. Parameters in param_updates are updated in place in the bound arrays."""

    def __init__(self, fn: NativeFunction, params: list):
        self.fn = fn
        self.params = params                  # referenced while bound: the code writes into them
        self._param_ptrs = _pointers(params)
        self._packs = fn._packed.refresher(params)   # f32 packed copies: repacked when weights were written
        graph = fn.graph
        # (name, dtype, shape, batched): only a leading dimension may be the batch N
        self._inputs = [(v.name, v.type.dtype.np, tuple(v.type.shape), v.type.has_batch) for v in graph.inputs]
        self._in_ptrs = (ctypes.c_void_p * max(1, len(graph.inputs)))()
        self._last_inputs: list = [None] * len(graph.inputs)   # the arrays _in_ptrs points into
        self._per_batch: dict = {}            # batch (and dynamic lengths) -> (outputs, output pointers, workspace)
        self.tuner = ThreadTuner()            # the thread count that helps, per batch size
        fn._engine.on_publish(self.tuner.retune)
        self._gather: tuple | None = None     # (rows, records address, count, owners): see gather_from
        self._blocks: dict = {}               # batch -> (argument block of the packed/gathered entry, address)

    def __call__(self, inputs: list, nthreads: int | None = None) -> list:
        """inputs: C-contiguous arrays of the graph's dtypes, in order; returns the outputs."""
        if self.fn.dynamic:   # a dynamic length: the signature check binds T (and names a mismatch)
            return self._call_dynamic(inputs, nthreads)
        batch = self._check(inputs)
        last = self._last_inputs
        for k, a in enumerate(inputs):
            if a is not last[k]:  # an array's data pointer is fixed while we hold it (resize refuses)
                self._in_ptrs[k] = a.ctypes.data
                last[k] = a
        return self.run_filled(batch, nthreads)

    def input_table(self) -> ctypes.Array:
        """The input pointer table, for a caller that writes the addresses itself and then calls
        run_filled (fit's feeder, frontend/training/fit_feeder.py): it must have checked each input's
        dtype, layout and shape, and keep the memory alive through the call. The next __call__
        refills every entry."""
        self._last_inputs = [None] * len(self._last_inputs)
        return self._in_ptrs

    def gather_from(self, rows: int, records: ctypes.Array, keep=None) -> None:
        """Where run_gathered takes its rows: sources of `rows` rows each, described by `records`
        (three int64 per source: input slot, address, bytes per row; gather_entry.py); `keep`: what
        owns the sources' memory, held while these records are. Slots and row sizes are checked
        against the graph's inputs here, so the native copy stays within every buffer."""
        if self.fn._gathered_fn is None:
            raise ValueError(f"graph @{self.fn.graph.name}: no gathered entry (a dynamic length, or no "
                             "parameter updated in place)")
        words = list(records)
        if len(words) % RECORD_WORDS or rows < 0:
            raise ValueError(f"graph @{self.fn.graph.name}: gather records must be triples and rows >= 0")
        for k, address, row_bytes in zip(words[::3], words[1::3], words[2::3]):
            if not 0 <= k < len(self._inputs) or not self._inputs[k][3] or not address:
                raise ValueError(f"graph @{self.fn.graph.name}: gather record for input {k}: no such batched input")
            name, dt, shape, _ = self._inputs[k]
            want = int(np.prod(shape[1:], dtype=np.int64)) * dt.itemsize
            if row_bytes != want:
                raise ValueError(f"graph @{self.fn.graph.name}: input '{name}' has rows of {want} bytes, the "
                                 f"gather record says {row_bytes}")
        self._gather = (int(rows), ctypes.addressof(records), len(words) // RECORD_WORDS, (records, keep))
        self._blocks = {}

    def run_gathered(self, batch: int, index_address: int, nthreads: int | None = None) -> list:
        """Run on a batch whose rows `index` (int64[batch] at index_address) the native entry gathers
        from the sources of gather_from into the buffers the pointer table holds (input_table: each
        at least `batch` rows), after checking every index against the rows; returns the outputs as
        run_filled does."""
        if self._gather is None:
            raise ValueError(f"graph @{self.fn.graph.name}: run_gathered needs gather_from first")
        block = self._blocks.get(batch) or self._block(batch)
        block[0][6] = index_address
        self._tuned(batch, nthreads, self.fn._run_block, self.fn._gathered_fn, *block)
        return self._per_batch[batch][0]

    def _block(self, batch: int) -> tuple:
        """The argument block for this batch size: the packed entry's six words, then the gathered
        entry's four (gather_entry.py; zeros until gather_from)."""
        outs, out_ptrs, ws = self._buffers(batch)
        rows, records, count, _ = self._gather or (0, 0, 0, None)
        words = (ctypes.c_int64 * GATHERED_ARGS)(
            ctypes.addressof(self._in_ptrs), ctypes.addressof(out_ptrs), ctypes.addressof(self._param_ptrs),
            ws.ctypes.data, batch, 1, 0, rows, records, count)
        block = self._blocks[batch] = (words, ctypes.addressof(words))
        return block

    def _tuned(self, batch: int, nthreads, run, *args) -> None:
        """run(*args, thread count) with the tuner's count (ThreadTuner.run: no generator's cost)."""
        packs = self._packs
        if packs is not None and packs.epoch != weight_epoch.current:
            packs.refresh()
        self.tuner.run(batch, nthreads, run, *args)

    def _buffers(self, batch: int, dims: dict | None = None) -> tuple:
        """(outputs, output pointer table, workspace) for this batch size (and dynamic lengths), made once."""
        key = (batch, tuple(sorted(dims.items()))) if dims else batch
        buffers = self._per_batch.get(key)
        if buffers is None:
            fn = self.fn
            outs = [np.empty(v.type.concrete_shape(batch, dims), v.type.dtype.np) for v in fn._outputs]
            buffers = self._per_batch[key] = (outs, _pointers(outs), aligned_empty(fn.workspace_bytes(batch, dims)))
        return buffers

    def run_filled(self, batch: int, nthreads: int | None = None) -> list:
        """Run on the inputs the pointer table holds now, `batch` rows each; returns the outputs
        (reused by the next call of the same batch size)."""
        block = self._blocks.get(batch) or self._block(batch)
        self._tuned(batch, nthreads, self.fn._run_block, self.fn._packed_fn, *block)
        return self._per_batch[batch][0]

    def _call_dynamic(self, inputs: list, nthreads) -> list:
        fn, dims = self.fn, {}
        arrays, batch = check_inputs(fn.graph, inputs, dims)
        batch = 0 if batch is None else batch
        outs, out_ptrs, ws = self._buffers(batch, dims)
        key = (batch, tuple(sorted(dims.items())))
        if self._packs is not None:
            self._packs.refresh_if_stale()
        with self.tuner.call(key, nthreads) as n:   # tuned per batch and length
            fn._run(_pointers(arrays), out_ptrs, self._param_ptrs, ws, batch, n, input_shapes(arrays))
        return outs

    def _check(self, inputs: list) -> int:
        """The batch size, after checking every input's dtype, layout and shape (the code trusts them)."""
        if len(inputs) != len(self._inputs):
            raise ValueError(f"graph @{self.fn.graph.name}: expected {len(self._inputs)} inputs, got {len(inputs)}")
        batch = None
        for a, (name, dt, shape, batched) in zip(inputs, self._inputs):
            if a.dtype != dt or not a.flags.c_contiguous or a.ndim != len(shape):
                raise ValueError(f"graph @{self.fn.graph.name}: input '{name}' expects a C-contiguous "
                                 f"{dt}{list(shape)} array, got {a.dtype}{list(a.shape)}")
            if batched:
                batch = a.shape[0] if batch is None else batch
            if a.shape != (shape if not batched else (batch,) + shape[1:]):
                raise ValueError(f"graph @{self.fn.graph.name}: input '{name}' expects shape "
                                 f"{['N', *shape[1:]] if batched else list(shape)} (N={batch}), got {list(a.shape)}")
        return 0 if batch is None else batch


def check_inputs(graph: Graph, inputs, dims: dict | None = None) -> tuple:
    """Match inputs (list, or dict by name) to the graph's signature; returns C-contiguous arrays, batch.

    Dtypes that convert same-kind are cast (others raise a TypeError); a dict may hold extra names.
    dims receives the sizes of symbolic non-batch dims (a dynamic length T; 0 is refused by name).
    """
    signature = [(v.name, v.type) for v in graph.inputs]
    dims = {} if dims is None else dims
    arrays, batch = check_signature(f"graph @{graph.name}", signature, inputs, convert=True, allow_unexpected=True,
                                    dims=dims)
    check_lengths(f"graph @{graph.name}", dims)
    return [np.ascontiguousarray(a) for a in arrays], batch


def input_shapes(arrays) -> ctypes.Array:
    """Every input's dims, concatenated in input order: the input_shapes argument of a dynamic entry."""
    dims = [int(d) for a in arrays for d in a.shape]
    return (ctypes.c_int64 * max(1, len(dims)))(*dims)


def _bind_threads(engine) -> None:
    engine.bind_globals(_bind_globals)


def _bind_globals(global_address) -> None:
    from .lower.collective import bind_sum_hook
    from .threads import bind_thread_launcher
    bind_thread_launcher(global_address)
    bind_sum_hook(global_address)   # cross_process_sum's hook (data-parallel training)


def compile_graph(graph: Graph, opt_level: int = 3, target=None) -> NativeFunction:
    """Compile `graph` for this machine (cached by structure in this process, and on disk across
    processes: see disk_cache.py); the result runs any batch size.
    target: a narrower target than the host's (e.g. host_target().without("avx512f")) for tests."""
    updates = tuple(sorted(graph.meta.get("param_updates", {}).items()))
    key = (print_graph(graph), updates, opt_level, target)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit if hit.graph is graph else hit.with_graph(graph)
    fn = NativeFunction(graph, _compilation(graph, opt_level, target))
    with _CACHE_LOCK:
        _CACHE[key] = fn
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return fn


def _compilation(graph: Graph, opt_level: int = 3, target=None) -> Compilation:
    return Compilation({"forward": graph}, c_symbol(graph.name), CompileOptions(opt_level, target=target),
                       disk_cache=DiskCache.from_environment(), kernel_library=True)


def precompile(graph: Graph, promised=None, opt_level: int = 3, target=None) -> None:
    """compile_graph's code for `graph` into the disk cache, not loaded (background_compile.py's child);
    the library kernels in `promised` ({key: calls}) are left to the process that compiles them."""
    _compilation(graph, opt_level, target).store(promised or {})
