"""parallel_for: split [0, count) into pool tasks of about TASK_ELEMENTS elements each.

The body is emitted once, in a worker function (compiler/threads.py), and receives the values it
needs as that function's fields; with one thread, or few elements, it runs on the calling thread.
"""
from __future__ import annotations

import itertools

from ..loops import I64, i64
from ..threads import ParallelRegion

TASK_ELEMENTS = 1 << 15   # elements per task: enough work to amortize taking a task
_names = itertools.count()


def parallel_for(builder, name: str, nthreads, count, elements_per_item, values: list, body,
                 task_elements: int = TASK_ELEMENTS) -> None:
    """body(b, lo, hi, values) computes items [lo, hi) of count; each item is elements_per_item large.
    task_elements: elements per task (a loop whose elements cost little asks for more)."""
    per_item = builder.select(builder.icmp_signed(">", elements_per_item, i64(0)), elements_per_item, i64(1))
    per_task = builder.sdiv(i64(task_elements), per_item)
    per_task = builder.select(builder.icmp_signed(">", per_task, i64(0)), per_task, i64(1))
    ntasks = builder.sdiv(builder.add(count, builder.sub(per_task, i64(1))), per_task)

    def task(b, t, fields):
        *vals, total, step = fields
        lo = b.mul(t, step)
        hi = b.add(lo, step)
        body(b, lo, b.select(b.icmp_signed("<", hi, total), hi, total), vals)

    region = ParallelRegion(builder.module, f"kc_{name}_{next(_names)}", [v.type for v in values] + [I64, I64], task)
    threads = nthreads if nthreads.type == I64 else builder.sext(nthreads, I64)
    region.run(builder, threads, ntasks, list(values) + [count, per_task])
