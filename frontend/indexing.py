"""KTensor.__getitem__: basic indexing (ints, slices, Ellipsis, None) lowered to slice/squeeze/expand_dims."""
from __future__ import annotations


def _expand_key(key, rank: int) -> list:
    key = list(key) if isinstance(key, tuple) else [key]
    if sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > rank:
        raise IndexError(f"too many indices for a tensor of rank {rank}: {used}")
    if any(k is Ellipsis for k in key):
        i = next(j for j, k in enumerate(key) if k is Ellipsis)
        key[i:i + 1] = [slice(None)] * (rank - used)
        return key
    return key + [slice(None)] * (rank - used)


def getitem(t, key):
    from .tensor import apply
    rank = t.ndim
    key = _expand_key(key, rank)
    axes, starts, ends, steps, squeeze, new_axes = [], [], [], [], [], []
    axis = 0
    out_pos = 0
    for k in key:
        if k is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        if isinstance(k, slice):
            if k != slice(None) and k != slice(None, None, 1):
                _add_slice(axes, starts, ends, steps, axis, k.start, k.stop, k.step, t)
            out_pos += 1
        elif isinstance(k, int) or hasattr(k, "__index__"):
            k = int(k)
            _add_slice(axes, starts, ends, steps, axis, k, k + 1 if k != -1 else None, 1, t)
            squeeze.append(axis)
        else:
            raise TypeError(f"unsupported index {k!r}: only ints, slices, '...' and None are supported")
        axis += 1
    out = t
    if axes:
        out = apply("slice", out, axes=axes, starts=starts, ends=ends, steps=steps)
    if squeeze:
        out = apply("squeeze", out, axes=squeeze)
    if new_axes:
        out = apply("expand_dims", out, axes=new_axes)
    return out


def _add_slice(axes, starts, ends, steps, axis, start, stop, step, t):
    dim = t.ir_shape[axis]
    if isinstance(dim, str):
        raise IndexError(f"indexing the batch dimension of a {t.shape} tensor is not static; "
                         "only ':' is supported there")
    step = 1 if step is None else int(step)
    if step <= 0:
        raise IndexError(f"slice step must be positive, got {step}")
    if isinstance(start, int) and not -dim <= start < dim and stop is not None and stop == start + 1:
        raise IndexError(f"index {start} is out of bounds for axis {axis} with size {dim}")
    axes.append(axis)
    starts.append(0 if start is None else int(start))
    ends.append(dim if stop is None else int(stop))
    steps.append(step)
