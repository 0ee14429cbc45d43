"""A counter that changes whenever something a compiled predict depends on may have changed.

Bumped when a Variable is created or its array replaced (assign, set_weights, optimizer steps in
eager mode), when a layer starts tracking another layer or a variable, when a Sequential model
gains or loses a layer, on compile(), on kc.config.set_backend and on quantization. In-place
writes into a Variable's array (native training steps) do not bump it: the array stays the same
and compiled code reads it live. Trainer.predict_on_batch keeps a prepared native call
(ir/call_plan.py) stamped with the value it was built at, and rebuilds it when the value differs.
"""
from __future__ import annotations

import itertools

_counter = itertools.count(1)
current = 0   # read as state_version.current; each bump stores a value never used before


def bump() -> None:
    """Mark every prepared call stale (next() on a count is atomic under the GIL, so two bumps
    never store the same value and a stamp can only match the state it was built from)."""
    global current
    current = next(_counter)
