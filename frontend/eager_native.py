"""Fast eager mode: repeated eager work runs compiled code instead of the NumPy reference.

Two things repeat in an eager training loop (the book's GradientTape listings):
  - the tape's gradient: the same recorded forward ops every step. Its structure (ops, attributes,
    which tensor feeds which, leaf shapes/dtypes, targets, sources) is a cheap key; from the second
    time a structure is seen, its forward+backward graph is compiled once and each later step is one
    native call on the leaves, skipping the IR rebuild and autodiff (cached like fit's steps);
  - large matmuls of the eager forward pass, which run as one-op compiled kernels once seen twice.
One-off or small work (a structure seen once; fewer than _MIN_ELEMENTS values; small products) stays
on the reference interpreter: a compile (about a second) would not pay for itself. Used only when the
configured backend is native.
"""
from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np

_SEEN: OrderedDict = OrderedDict()     # structure key -> times seen, or the compiled _Gradient / kernel
_LIMIT = 256
_MATMUL_MIN_FLOPS = 1 << 23           # m*k*n below this, NumPy keeps up with a native call
_MIN_ELEMENTS = 1 << 17               # tapes/updates over fewer values (leaves, variables) stay interpreted


def enabled() -> bool:
    from kcompile.frontend import config
    return config.backend() == "native"


def _lookup(key, build):
    """The compiled entry for key: built the second time the key is seen (None before, or if disabled)."""
    hit = _SEEN.get(key)
    if hit is not None and not isinstance(hit, int):
        _SEEN.move_to_end(key)
        return hit
    if hit is None:
        _SEEN[key] = 1
        while len(_SEEN) > _LIMIT:
            _SEEN.popitem(last=False)
        return None
    _SEEN[key] = entry = build()
    return entry


# -- the tape's gradient -------------------------------------------------------------------------
class _Gradient:
    def __init__(self, run, positions):
        self.run, self.positions = run, positions


def cached_gradients(tape, targets, sources):
    """The gradients as KTensors from a compiled graph of this tape structure, or None (not cached yet)."""
    if not enabled():
        return None
    key, leaves = _tape_structure(tape, targets, sources)
    if key is None or sum(t.data.size for t in leaves) < _MIN_ELEMENTS:
        return None
    entry = _lookup(key, lambda: _compile_gradient(tape, targets, sources))
    if entry is None:
        return None
    from kcompile.frontend.tensor import KTensor
    if entry.run is None:
        return [None] * len(sources)
    outs = entry.run([t.data for t in leaves])
    return [None if p is None else KTensor(data=outs[p]) for p in entry.positions]


def _compile_gradient(tape, targets, sources):
    from kcompile.compiler.jit import compile_graph
    from kcompile.frontend.tape import _RecordedGraph
    graph, positions = _RecordedGraph(tape._ops).gradient_graph(targets, sources, None, tape._is_watched)
    if graph is None:
        return _Gradient(None, None)
    return _Gradient(_Reusing(compile_graph(graph)), positions)


def _tape_structure(tape, targets, sources):
    """(hashable key, leaves in first-use order) for the tape's recorded ops; key None if unhashable."""
    from kcompile.frontend.tensor import KTensor
    ref, leaves, key = {}, [], []
    for i, (op_name, inputs, attrs, outputs) in enumerate(tape._ops):
        refs = []
        for t in inputs:
            r = ref.get(id(t))
            if r is None:
                r = ref[id(t)] = -1 - len(leaves)
                leaves.append(t)
                key.append((t.data.shape, t.data.dtype.str, tape._is_watched(t)))
            refs.append(r)
        frozen = _freeze(attrs)
        if frozen is None:
            return None, None
        key.append((op_name, frozen, tuple(refs)))
        for j, o in enumerate(outputs):
            ref[id(o)] = (i, j)
    key.append(tuple(ref.get(id(t)) for t in targets))
    key.append(tuple((ref.get(id(s)), isinstance(s, KTensor) and tape._is_watched(s)) for s in sources))
    return tuple(key), leaves


def _freeze(attrs):
    try:
        frozen = tuple(sorted(attrs.items()))
        hash(frozen)
        return frozen
    except TypeError:   # an array-valued attribute: not worth a structural key
        return None


# -- large eager matmuls ---------------------------------------------------------------------------
def reference(opdef, arrays, attrs, batch):
    """opdef's result on arrays: a compiled one-op kernel for large repeated matmuls, else the reference."""
    if opdef.name == "matmul" and len(arrays) == 2 and arrays[0].ndim == 2 and arrays[1].ndim == 2:
        (m, k), n = arrays[0].shape, arrays[1].shape[-1]
        if m * k * n >= _MATMUL_MIN_FLOPS and arrays[0].dtype == arrays[1].dtype == np.float32 and enabled():
            key = ("matmul", arrays[0].shape, arrays[1].shape, attrs["transpose_a"], attrs["transpose_b"])
            kernel = _lookup(key, lambda: _compile_op(opdef.name, arrays, attrs))
            if kernel is not None:
                return kernel(arrays)
    return opdef.reference(arrays, attrs, batch)


def _compile_op(op_name, arrays, attrs):
    from kcompile.compiler.jit import compile_graph
    from kcompile.ir import GraphBuilder, TensorType, dtype as to_dtype
    b = GraphBuilder(f"eager_{op_name}")
    xs = [b.input(f"x{i}", TensorType(a.shape, to_dtype(a.dtype))) for i, a in enumerate(arrays)]
    return _Reusing(compile_graph(b.build([b.op(op_name, *xs, **attrs)])))


class _Reusing:
    """Calls of one compiled graph (no parameters) that reuse workspaces and output arrays.

    Fresh large buffers every step cost page faults that outweigh the compute, so each call runs on
    a bound call (compiler.jit.BoundCall) whose outputs are handed out as they are. A bound call's
    outputs are overwritten only once nothing outside holds them (their reference counts are back
    to what they were when handed out); otherwise another bound call (up to _POOL) or fresh arrays
    are used, so an eager tensor never changes under its holder."""

    _POOL = 4

    def __init__(self, native):
        self.native = native
        self.slots: list = []   # [bound call, outputs handed out, their reference counts then]

    def __call__(self, arrays):
        arrays = [a if a.flags.c_contiguous else np.ascontiguousarray(a) for a in arrays]
        for slot in self.slots:
            if all(now <= then for now, then in zip(_counts(slot[1]), slot[2])):
                return self._run(slot, arrays)
        if len(self.slots) < self._POOL:
            slot = [self.native.bind({}), [], []]
            self.slots.append(slot)
            return self._run(slot, arrays)
        return self.native(arrays)

    @staticmethod
    def _run(slot, arrays):
        slot[1] = outs = list(slot[0](arrays))
        slot[2] = _counts(outs)
        return outs


def _counts(arrays) -> list:
    """Reference counts, always taken the same way so a handed-out set compares to its own baseline."""
    return [sys.getrefcount(a) for a in arrays]


# -- the optimizer's eager update ------------------------------------------------------------------
def compiled_apply(optimizer, grads, variables) -> bool:
    """Apply the update with a compiled kc.function of apply_gradients once this variable set repeats."""
    if not enabled() or sum(v.data.size for v in variables) < _MIN_ELEMENTS:
        return False
    key = tuple(id(v) for v in variables) + tuple((np.shape(g), np.asarray(g).dtype.str) for g in grads)
    cache = optimizer.__dict__.setdefault("_eager_updates", {})
    entry = cache.get(key)
    if entry is None:
        cache[key] = "seen"
        return False
    if entry == "seen":
        from kcompile.frontend.function import Function
        pairs = list(variables)
        entry = cache[key] = Function(lambda gs: optimizer.apply_gradients(zip(gs, pairs)),
                                      name=f"{optimizer.name}_update")
    entry(list(grads))
    return True
