"""cross_process_sum: the elementwise sum of x over the processes of a data-parallel job.

Its value depends on the other processes, so the data-parallel trainer installs the summing hook
(`set_sum_hook`, frontend/training/data_parallel.py) and the reference and native code both call
it, in place on a copy of x. With no hook (one process, an AOT artifact, a unit test) the op is
the identity: the sum over a world of one. Synchronized BatchNormalization uses it for its batch
statistics; its gradient is the same sum of the cotangents (every process's loss reads the sum).
A failure inside the hook is kept (`take_failure`) so the caller re-raises it after native code
has returned with an error status.
"""
from __future__ import annotations

import numpy as np

from ..registry import defop
from ._util import require

_HOOK: list = [None]
_FAILURE: list = [None]


def set_sum_hook(fn):
    """Install fn(buf: f32 or f64 array) -> None, summing buf over the processes in place; returns the old hook."""
    previous, _HOOK[0] = _HOOK[0], fn
    return previous


def run_sum_hook(buf: np.ndarray) -> bool:
    """Sum buf in place over the processes (identity without a hook); False if the hook raised."""
    hook = _HOOK[0]
    if hook is None:
        return True
    try:
        hook(buf)
    except BaseException as e:   # noqa: BLE001 (native callers cannot take an exception: keep it)
        _FAILURE[0] = e
        return False
    return True


def take_failure():
    """The exception a hook raised since the last call, or None."""
    failure, _FAILURE[0] = _FAILURE[0], None
    return failure


def _infer(ts, attrs):
    require(ts[0].dtype.name in ("f32", "f64"), f"cross_process_sum sums f32 or f64 tensors, got {ts[0]}")
    return [ts[0]]


def _reference(xs, attrs, batch):
    y = np.array(xs[0], order="C")
    if not run_sum_hook(y):
        raise take_failure()
    return [y]


defop("cross_process_sum", ("x",), _infer, _reference,
      doc="elementwise sum over the processes of a data-parallel job (identity in one process)")
