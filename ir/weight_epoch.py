"""A counter bumped whenever native code writes weight arrays in place (a training step).

Packed copies of weights (passes/f32_prepack.py) are derived from the weight arrays: a copy made
under one value of the counter may be stale under another. The in-process JIT bumps it after every
call of an entry that updates parameters in place (compiler/jit.py) and repacks a prepared call's
copies when the value it packed them under differs (one compare per call). It lives in ir/ because
the JIT and the call plans of every layer read it.
"""
from __future__ import annotations

import itertools

_counter = itertools.count(1)
current = 0   # read as weight_epoch.current


def bump() -> None:
    """Mark every packed weight copy possibly stale (next() on a count is atomic under the GIL)."""
    global current
    current = next(_counter)
