"""scan: a loop over one axis with carried state and per-step outputs; its body is a region.

    finals..., ys... = scan(carries..., xs..., consts...) {body, num_carries=C, num_xs=X, axis, reverse}
    body(c..., x_t..., consts...) -> (new c..., y_t...)

Step t runs for t = 0..T-1 (T-1..0 when reverse) with x_t = take(xs, t, axis); the carries flow
from step to step and the finals are the last step's; ys stack each y_t at position t along
`axis`, so a reverse scan's ys line up with its xs (as JAX's lax.scan). T is the (> 0) length
of every xs along `axis`: static, or a symbol (T, a dynamic sequence length) that the
inputs bind at run time (a reference run then refuses T = 0 as an empty scan).

Where the sequence axis goes: TensorType allows a symbol (the batch N) only as the leading
dimension, so a time-major [T, N, F] sequence cannot be typed at all, while batch-major [N, T, F]
(what Keras recurrent layers take) can: scan it over axis 1. The native loop then copies each
x_t / y_t slice into / out of a contiguous step buffer (O(N*F) per step, small beside a step's
matmuls); a scan over axis 0 of static-shaped xs addresses its slices in place.
"""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..graph import Graph
from ..interpreter import run
from ..registry import Attr, defop
from ..types import TensorType
from ._util import require

# Ops a scan body may not hold: their semantics are not a pure function of their inputs at each
# step (random_uniform_like would draw the same "random" numbers every step unless its counter is
# carried, which is the caller's job to make explicit).
NOT_IN_SCAN_BODY = {"random_uniform_like": "draws from a counter; pass fresh randomness in as a scanned input"}


def _step_type(x: TensorType, axis: int) -> TensorType:
    return x.with_shape(x.shape[:axis] + x.shape[axis + 1:])


def _stacked(y: TensorType, axis: int, length: int, what: str) -> TensorType:
    require(axis <= y.rank, f"{what} {y} has no axis {axis} to stack the steps along")
    try:
        return y.with_shape(y.shape[:axis] + (length,) + y.shape[axis:])
    except ValueError:
        raise ShapeError(f"stacking {what} {y} along axis {axis} would move its batch dimension") from None


def _check_body_ops(body, where: str):
    for node in body.nodes:
        if node.op in NOT_IN_SCAN_BODY:
            raise ShapeError(f"{where}: {node.where()} is not allowed in a scan body: op '{node.op}' "
                             f"{NOT_IN_SCAN_BODY[node.op]}")
        for v in node.attrs.values():
            if isinstance(v, Graph):
                _check_body_ops(v, where)


def _sequence_length(xs, axis: int):
    """The trip count: a static length, or a symbol (a dynamic sequence length T) bound at run time."""
    length = None
    for i, x in enumerate(xs):
        require(0 <= axis < x.rank, f"axis {axis} is out of range for scanned input {i} {x}")
        d = x.shape[axis]
        require(isinstance(d, int) or axis > 0, f"scanned input {i} {x}: the scan cannot run over the batch axis")
        require(length is None or d == length, f"scanned inputs disagree on the length of axis {axis}: "
                                               f"{', '.join(str(x) for x in xs)}")
        length = d
    require(isinstance(length, str) or length > 0,
            f"a scan over an axis of length 0 is empty: scanned input {xs[0]} (axis {axis})")
    return length


def _scan_infer(ts, attrs):
    body, nc, nx, axis = attrs["body"], attrs["num_carries"], attrs["num_xs"], attrs["axis"]
    require(nc >= 0 and nx >= 1 and nc + nx <= len(ts),
            f"num_carries={nc}, num_xs={nx} need 0 <= carries, 1 <= xs and carries + xs <= {len(ts)} inputs")
    name = f"body @{body.name}"
    require(len(body.inputs) == len(ts), f"{name} takes {len(body.inputs)} input(s), scan passes {len(ts)} "
                                         f"({nc} carries, {nx} scanned, {len(ts) - nc - nx} constants)")
    require(len(body.outputs) >= nc, f"{name} returns {len(body.outputs)} result(s), fewer than its {nc} carries")
    _check_body_ops(body, name)
    carries, xs = ts[:nc], ts[nc:nc + nx]
    length = _sequence_length(xs, axis)
    roles = [f"carry {i}" for i in range(nc)] + [f"step slice of scanned input {i}" for i in range(nx)] + \
        [f"constant {i}" for i in range(len(ts) - nc - nx)]
    passed = list(carries) + [_step_type(x, axis) for x in xs] + list(ts[nc + nx:])
    for v, t, role in zip(body.inputs, passed, roles):
        require(v.type == t, f"{name} input %{v.name} is {v.type} but the scan passes {t} ({role})")
    for i, (v, t) in enumerate(zip(body.outputs, carries)):
        require(v.type == t, f"{name} result {i} (the new carry {i}) is {v.type} but carry {i} is {t}")
    ys = [_stacked(v.type, axis, length, f"{name} result {nc + i}") for i, v in enumerate(body.outputs[nc:])]
    return list(carries) + ys


def _scan_ref(arrays, attrs, batch):
    body, nc, nx, axis = attrs["body"], attrs["num_carries"], attrs["num_xs"], attrs["axis"]
    carries, xs, consts = list(arrays[:nc]), arrays[nc:nc + nx], list(arrays[nc + nx:])
    length = xs[0].shape[axis]
    if length == 0:
        raise ValueError(f"a scan over an axis of length 0 is empty: scanned input of shape {xs[0].shape}")
    steps: list = [None] * length
    for t in (reversed(range(length)) if attrs["reverse"] else range(length)):
        outs = run(body, carries + [np.take(x, t, axis) for x in xs] + consts, batch=batch)
        carries, steps[t] = outs[:nc], outs[nc:]
    ys = [np.stack([s[j] for s in steps], axis=axis) for j in range(len(body.outputs) - nc)]
    return carries + ys


defop("scan", ("*operands",), _scan_infer, _scan_ref,
      attrs={"body": Attr("graph"), "num_carries": Attr("int"), "num_xs": Attr("int", 1), "axis": Attr("int", 0),
             "reverse": Attr("bool", False)},
      doc="loop over an axis: body(carries, x_t, consts) -> (new carries, y_t); finals and stacked ys")
