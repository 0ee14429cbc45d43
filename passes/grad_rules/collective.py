"""VJP of cross_process_sum: every process's loss reads the sum, so each input's gradient is the sum
of the cotangents over the processes (the same op again)."""
from __future__ import annotations

from . import defvjp


@defvjp("cross_process_sum")
def _cross_process_sum(b, node, g):
    return [b.cross_process_sum(g)]
