"""VJPs of the layout and indexing ops: each is the op's transpose (slice <-> pad, gather <-> scatter_add)."""
from __future__ import annotations

from kcompile.ir import ops_with

from . import defvjp
from ._emit import reshape_to, unbroadcast, zeros


@defvjp("transpose")
def _transpose(b, node, g):
    perm = node.attrs["perm"]
    inverse = [perm.index(i) for i in range(len(perm))]
    return [b.transpose(g, perm=inverse)]


@defvjp(*ops_with("view"))  # same elements in the same order: the gradient is reshaped back
def _reshape(b, node, g):
    return [reshape_to(b, g, node.inputs[0].type)]


@defvjp("broadcast_to")
def _broadcast_to(b, node, g):
    return [unbroadcast(b, g, node.inputs[0].type)]


@defvjp("concat")
def _concat(b, node, g):
    axis = node.attrs["axis"] % g.type.rank
    pieces = b.split(g, axis=axis, sections=[x.shape[axis] for x in node.inputs])
    return list(pieces) if isinstance(pieces, tuple) else [pieces]


@defvjp("split")
def _split(b, node, g):
    gs = g if isinstance(g, list) else [g]
    return [gs[0] if len(gs) == 1 else b.concat(*gs, axis=node.attrs["axis"])]


@defvjp("pad")
def _pad(b, node, g):
    x, pads = node.inputs[0], node.attrs["pads"]
    axes = [i for i in range(x.type.rank) if pads[2 * i] or pads[2 * i + 1]]
    if not axes:
        return [g]
    starts = [pads[2 * i] for i in axes]
    return [b.slice(g, axes=axes, starts=starts, ends=[s + x.shape[i] for s, i in zip(starts, axes)])]


@defvjp("slice")
def _slice(b, node, g):
    """Scatter g back into zeros of x's shape, one sliced axis at a time."""
    x, attrs = node.inputs[0], node.attrs
    steps = attrs["steps"] or (1,) * len(attrs["axes"])
    if 0 in g.shape:
        return [zeros(b, x.type, like=x)]
    for axis, start, end, step in zip(attrs["axes"], attrs["starts"], attrs["ends"], steps):
        axis %= x.type.rank
        picked = range(x.shape[axis])[slice(start, end, step)]
        g = _unslice_axis(b, g, axis, picked.start, step, x.shape[axis])
    return [g]


def _unslice_axis(b, g, axis, start, step, size):
    """Place g's entries along `axis` at start, start+step, ... of a zero axis of length size."""
    count = g.shape[axis]
    if step > 1:  # interleave step-1 zeros after each entry: [.., c, 1, ..] -pad-> [.., c, step, ..] -> [.., c*step, ..]
        g = b.expand_dims(g, axes=[axis + 1])
        g = b.pad(g, pads=_axis_pads(g.type.rank, axis + 1, 0, step - 1))
        g = b.reshape(g, shape=g.shape[:axis] + (count * step,) + g.shape[axis + 2:])
        keep = min(count * step, size - start)  # the trailing zeros may run past the end
        if keep < count * step:
            g = b.slice(g, axes=[axis], starts=[0], ends=[keep])
    after = size - start - g.shape[axis]
    return b.pad(g, pads=_axis_pads(g.type.rank, axis, start, after)) if start or after else g


def _axis_pads(rank, axis, before, after):
    pads = [0] * (2 * rank)
    pads[2 * axis], pads[2 * axis + 1] = before, after
    return pads


@defvjp("gather")
def _gather(b, node, g):
    data, indices = node.inputs
    return [b.scatter_add(indices, g, shape=data.shape, axis=node.attrs["axis"]), None]


@defvjp("scatter_add")
def _scatter_add(b, node, g):
    indices = node.inputs[0]
    return [None, b.gather(g, indices, axis=node.attrs["axis"])]
