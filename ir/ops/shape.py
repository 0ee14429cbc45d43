"""Layout ops: transpose, reshape, broadcast_to, expand_dims, squeeze, concat, split, slice, pad."""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import concrete, fmt_shape, norm_axes, norm_axis, require, same_dtype


def _static_prod(dims):
    p = 1
    for d in dims:
        p *= d
    return p


# -- transpose ---------------------------------------------------------------------------
def _transpose_infer(ts, attrs):
    t, perm = ts[0], attrs["perm"]
    require(sorted(perm) == list(range(t.rank)), f"perm {list(perm)} is not a permutation of rank {t.rank}")
    require(not t.has_batch or perm[0] == 0, f"transpose {list(perm)} would move the batch dimension of {t}")
    return [t.with_shape(tuple(t.shape[p] for p in perm))]


defop("transpose", ("x",), _transpose_infer, lambda xs, a, batch: [np.transpose(xs[0], a["perm"]).copy()],
      attrs={"perm": Attr("ints")}, doc="permute axes")


# -- reshape -----------------------------------------------------------------------------
def _reshape_infer(ts, attrs):
    t, shape = ts[0], list(attrs["shape"])
    sym = [i for i, d in enumerate(shape) if isinstance(d, str)]
    require(sym in ([], [0]), f"reshape target {fmt_shape(shape)}: only the leading dimension may be symbolic")
    require(bool(sym) == t.has_batch,
            f"reshape {t} -> {fmt_shape(shape)}: the batch dimension must be kept as the leading dimension")
    if sym:
        require(shape[0] == t.shape[0], f"reshape target batch {shape[0]} differs from {t.shape[0]}")
    src = _static_prod(t.shape[1:] if t.has_batch else t.shape)
    rest = shape[1:] if sym else shape
    unknown = [i for i, d in enumerate(rest) if d == -1]
    require(len(unknown) <= 1 and all(d == -1 or d >= 0 for d in rest),
            f"reshape target {fmt_shape(shape)} may hold at most one -1 and no other negative size")
    known = _static_prod(d for d in rest if d != -1)
    if unknown:
        require(known > 0 and src % known == 0, f"cannot reshape {t} to {fmt_shape(shape)}")
        rest[unknown[0]] = src // known
    require(_static_prod(rest) == src, f"cannot reshape {t} to {fmt_shape(shape)}: sizes differ")
    return [t.with_shape(([shape[0]] if sym else []) + rest)]


def _reshape_ref(xs, attrs, batch):
    shape = concrete(attrs["shape"], xs[0].shape[0] if attrs["shape"] and isinstance(attrs["shape"][0], str) else batch)
    return [np.reshape(xs[0], shape)]


defop("reshape", ("x",), _reshape_infer, _reshape_ref, attrs={"shape": Attr("shape")},
      doc="same data, new shape; leading N stays N, one -1 inferred", traits=("view",))


# -- broadcast_to / expand_dims / squeeze -----------------------------------------------
def _broadcast_infer(ts, attrs):
    t, shape = ts[0], attrs["shape"]
    require(all(not isinstance(d, str) for d in shape[1:]), f"broadcast_to {fmt_shape(shape)}: only a leading symbol")
    require(len(shape) >= t.rank, f"cannot broadcast {t} to lower rank {fmt_shape(shape)}")
    for src, dst in zip(t.shape[::-1], shape[::-1]):
        require(src == dst or src == 1, f"cannot broadcast {t} to {fmt_shape(shape)}")
    return [t.with_shape(shape)]


defop("broadcast_to", ("x",), _broadcast_infer,
      lambda xs, a, batch: [np.broadcast_to(xs[0], concrete(a["shape"], batch)).copy()],
      attrs={"shape": Attr("shape")}, doc="NumPy broadcast to a shape (may lead with N)",
      traits=("elementwise", "integer"))


def _expand_infer(ts, attrs):
    t = ts[0]
    axes = norm_axes(attrs["axes"], t.rank + len(attrs["axes"]))
    require(not t.has_batch or 0 not in axes, f"expand_dims at axis 0 would move the batch dimension of {t}")
    shape = list(t.shape)
    for a in axes:
        shape.insert(a, 1)
    return [t.with_shape(shape)]


def _expand_ref(xs, attrs, batch):
    return [np.expand_dims(xs[0], tuple(a % (xs[0].ndim + len(attrs["axes"])) for a in attrs["axes"]))]


defop("expand_dims", ("x",), _expand_infer, _expand_ref, attrs={"axes": Attr("ints")}, doc="insert size-1 axes",
      traits=("view",))


def _squeeze_infer(ts, attrs):
    t = ts[0]
    axes = norm_axes(attrs["axes"], t.rank)
    for a in axes:
        require(t.shape[a] == 1, f"squeeze axis {a} of {t} has size {t.shape[a]}, not 1")
    return [t.with_shape(tuple(d for i, d in enumerate(t.shape) if i not in axes))]


defop("squeeze", ("x",), _squeeze_infer,
      lambda xs, a, batch: [np.squeeze(xs[0], tuple(x % xs[0].ndim for x in a["axes"]))],
      attrs={"axes": Attr("ints")}, doc="remove the named size-1 axes", traits=("view",))


# -- concat / split ----------------------------------------------------------------------
def _concat_infer(ts, attrs):
    dt = same_dtype(ts)
    rank = ts[0].rank
    require(all(t.rank == rank for t in ts), f"concat operands differ in rank: {', '.join(map(str, ts))}")
    ax = norm_axis(attrs["axis"], rank)
    require(not ts[0].has_batch or ax != 0, "concat along the batch axis is not static")
    for t in ts[1:]:
        require(all(a == b for i, (a, b) in enumerate(zip(t.shape, ts[0].shape)) if i != ax),
                f"concat operands differ off axis {ax}: {', '.join(map(str, ts))}")
    shape = list(ts[0].shape)
    shape[ax] = sum(t.shape[ax] for t in ts)
    return [TensorType(shape, dt)]


defop("concat", ("*xs",), _concat_infer, lambda xs, a, batch: [np.concatenate(xs, axis=a["axis"])],
      attrs={"axis": Attr("int", -1)}, doc="join along an axis")


def _split_infer(ts, attrs):
    t = ts[0]
    ax = norm_axis(attrs["axis"], t.rank)
    require(not isinstance(t.shape[ax], str), f"split along the batch axis of {t} is not static")
    secs = attrs["sections"]
    require(len(secs) >= 1 and all(s >= 0 for s in secs) and sum(secs) == t.shape[ax],
            f"split sections {list(secs)} must be >= 0 and sum to {t.shape[ax]} (axis {ax} of {t})")
    outs = []
    for s in secs:
        shape = list(t.shape)
        shape[ax] = s
        outs.append(t.with_shape(shape))
    return outs


def _split_ref(xs, attrs, batch):
    idx = np.cumsum(attrs["sections"])[:-1]
    return [np.ascontiguousarray(p) for p in np.split(xs[0], idx, axis=attrs["axis"])]


defop("split", ("x",), _split_infer, _split_ref,
      attrs={"axis": Attr("int", -1), "sections": Attr("ints")}, doc="split into pieces of the given sizes")


# -- slice / pad -------------------------------------------------------------------------
def _slice_bounds(size, start, end, step):
    return range(size)[slice(start, end, step)]


def _slice_infer(ts, attrs):
    t = ts[0]
    n = len(attrs["axes"])
    require(len(attrs["starts"]) == n and len(attrs["ends"]) == n and len(attrs["steps"]) in (0, n),
            f"slice: axes, starts, ends (and steps) must have equal lengths, got {attrs}")
    steps = attrs["steps"] or (1,) * n
    shape = list(t.shape)
    axes = [norm_axis(a, t.rank) for a in attrs["axes"]]  # in the given order: starts/ends pair with it
    for ax, s, e, st in zip(axes, attrs["starts"], attrs["ends"], steps):
        require(st > 0, f"slice step must be positive, got {st}")
        require(not isinstance(shape[ax], str), f"slice along the batch axis of {t} is not static")
        shape[ax] = len(_slice_bounds(shape[ax], s, e, st))
    require(len(set(axes)) == n, f"slice axes {list(attrs['axes'])} repeat an axis")
    return [t.with_shape(shape)]


def _slice_ref(xs, attrs, batch):
    x = xs[0]
    index = [slice(None)] * x.ndim
    steps = attrs["steps"] or (1,) * len(attrs["axes"])
    for ax, s, e, st in zip(attrs["axes"], attrs["starts"], attrs["ends"], steps):
        index[ax % x.ndim] = slice(s, e, st)
    return [np.ascontiguousarray(x[tuple(index)])]


defop("slice", ("x",), _slice_infer, _slice_ref,
      attrs={"axes": Attr("ints"), "starts": Attr("ints"), "ends": Attr("ints"), "steps": Attr("ints", ())},
      doc="Python slicing x[start:end:step] on the named axes (clamped like Python)")


def _pad_infer(ts, attrs):
    t, pads = ts[0], attrs["pads"]
    require(len(pads) == 2 * t.rank, f"pad needs 2*rank = {2 * t.rank} values (before, after per axis), got {len(pads)}")
    require(all(p >= 0 for p in pads), f"pad amounts must be >= 0, got {list(pads)}")
    require(not t.has_batch or pads[0] == pads[1] == 0, f"pad on the batch axis of {t} is not static")
    shape = [d if isinstance(d, str) else d + pads[2 * i] + pads[2 * i + 1] for i, d in enumerate(t.shape)]
    return [t.with_shape(shape)]


def _pad_ref(xs, attrs, batch):
    p = attrs["pads"]
    width = [(p[2 * i], p[2 * i + 1]) for i in range(xs[0].ndim)]
    return [np.pad(xs[0], width, constant_values=np.asarray(attrs["value"]).astype(xs[0].dtype))]


defop("pad", ("x",), _pad_infer, _pad_ref, attrs={"pads": Attr("ints"), "value": Attr("float", 0.0)},
      doc="constant padding; pads = (before0, after0, before1, after1, ...)")
