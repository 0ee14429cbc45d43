"""The fast call path into a packed native entry point (`<symbol>_packed(const int64_t args[6])`).

Shared by the in-process JIT (compiler/jit.py) and the artifact loader (runtime/native.py), which
may not import each other, so it lives here beside the other leaves every layer uses.

A Python call through ctypes costs about 0.3 us for one integer argument and 1.5-2 us for six;
`ndarray.ctypes.data` costs 1-2 us per array. So a CallPlan keeps, per thread and per batch size,
a Slot: the six-word argument block, the input/output pointer tables and the workspace, all built
once. Small tensors (<= STAGE_BYTES) go through per-slot staging buffers whose addresses are fixed
(a copy of a few KiB costs less than asking NumPy for a pointer); larger ones are passed by pointer.
Outputs are returned as fresh arrays, as the slow path does. The checks are identity and tuple
compares; anything unusual (another dtype, a non-contiguous or non-ndarray input, batch 0) makes
`__call__` return None, and the caller takes its slow path, which converts or raises the usual
errors. Slots are per thread (threading.local), so threads calling one plan never share buffers.

Threads: every call with the default offer runs with the count the plan's tuner allows, as the
slow paths do (ir/thread_budget.py, ir/thread_tuner.py). A small (staged) call between trials whose
tuner chose one thread costs a dictionary lookup; a trial's call, or one given more threads (a
batch-1 dense layer streaming megabytes of weights splits them, compiler/kernels/gemm.py), takes
its count from the process-wide budget. A count the caller or the user chose is written once into
each slot's block (the staged path) or taken from the budget per call (the unstaged one).
"""
from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict

import numpy as np

from . import weight_epoch
from . import thread_budget
from .thread_budget import get_num_threads, user_chose_threads
from .thread_tuner import ThreadTuner

PACKED_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
STAGE_BYTES = 16 << 10       # tensors up to this size are copied through fixed buffers
SLOTS_PER_THREAD = 4         # batch sizes remembered per thread (least recently used go first)
MAX_BATCH = 1 << 31
ALIGN = 64


def aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialized 64-byte-aligned uint8 buffer of nbytes (workspaces need no zeroing)."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes]


class Slot:
    """One thread's buffers for one batch size: argument block, pointer tables, staging, workspace."""

    __slots__ = ("args", "args_address", "in_ptrs", "out_ptrs", "in_stage", "out_stage", "staged", "workspace",
                 "keep")

    def __init__(self, plan: "CallPlan", batch: int):
        self.in_ptrs = (ctypes.c_void_p * max(1, len(plan.inputs)))()
        self.out_ptrs = (ctypes.c_void_p * max(1, len(plan.outputs)))()
        self.in_stage = [self._stage(dt, (batch, *tail)) for dt, tail in plan.inputs]
        self.out_stage = [self._stage(dt, (batch, *tail)) for dt, tail in plan.outputs]
        self.staged = all(s is not None for s in self.in_stage + self.out_stage)
        for table, stages in ((self.in_ptrs, self.in_stage), (self.out_ptrs, self.out_stage)):
            for k, s in enumerate(stages):
                if s is not None:
                    table[k] = s.ctypes.data
        per_batch, static = plan.workspace
        self.workspace = aligned_empty(per_batch * batch + static)
        self.args = (ctypes.c_int64 * 6)(ctypes.addressof(self.in_ptrs), ctypes.addressof(self.out_ptrs),
                                         plan.params_address, self.workspace.ctypes.data, batch,
                                         plan.nthreads or get_num_threads())
        self.args_address = ctypes.addressof(self.args)
        self.keep = plan.keep   # the parameter arrays the block points into stay alive with the slot

    @staticmethod
    def _stage(dtype, shape):
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes > STAGE_BYTES:
            return None
        return aligned_empty(max(nbytes, 1))[:nbytes].view(dtype).reshape(shape)


class CallPlan:
    """A native entry point with its parameters bound: plan(arrays) -> fresh outputs, or None.

    inputs/outputs: (numpy dtype, shape after the batch dimension) per tensor; every tensor must be
    batched (a plan is not made otherwise). params_address: the parameter block or pointer table;
    keep: the objects that memory belongs to. nthreads: the caller's count (None: the default offer,
    tuned per batch size on large calls by `tuner`); on_status(status) raises the caller's error for a
    nonzero status.
    """

    def __init__(self, packed_address: int, inputs, outputs, params_address: int, workspace, nthreads,
                 on_status, keep=None, tuner: ThreadTuner | None = None, packs=None):
        self._fn = PACKED_CFUNC(packed_address)
        self.inputs = [(np.dtype(dt), tuple(tail)) for dt, tail in inputs]
        self.outputs = [(np.dtype(dt), tuple(tail)) for dt, tail in outputs]
        self.params_address, self.workspace, self.nthreads = params_address, workspace, nthreads
        self.on_status, self.keep, self.tuner = on_status, keep, tuner or ThreadTuner()
        self._tunable = thread_budget.machine_threads() > 1   # (one CPU: nothing to tune; ir/thread_budget.tunable_offer)
        # packed weight copies (passes/f32_prepack.py): `packs.epoch` is the weight epoch they were
        # packed under; when training has moved it since, packs.refresh() repacks them in place
        self._packs = packs
        self._local = threading.local()
        # one input: call1 checks it against these without loops (after a native call that streamed
        # megabytes of weights, every Python step runs from cold caches, so fewer steps matter)
        self._dtype0, self._tail0 = self.inputs[0] if len(self.inputs) == 1 else (None, None)

    def _slot(self, batch: int) -> Slot:
        local = self._local
        last = getattr(local, "last", None)
        if last is not None and last[0] == batch:
            return last[1]
        slots = getattr(local, "slots", None)
        if slots is None:
            slots = local.slots = OrderedDict()
        slot = slots.get(batch)
        if slot is None:
            slot = slots[batch] = Slot(self, batch)
            while len(slots) > SLOTS_PER_THREAD:
                slots.popitem(last=False)
        else:
            slots.move_to_end(batch)
        local.last = (batch, slot)
        return slot

    def native_call(self, arrays) -> tuple:
        """(packed entry address, argument block address, keep-alive) of one call on these inputs,
        staged as __call__ stages them, so a native loop can time the entry alone (bench/)."""
        batch = len(arrays[0])
        slot = self._slot(batch)
        keep = []
        for k, (a, stage) in enumerate(zip(arrays, slot.in_stage)):
            if stage is None:
                keep.append(np.ascontiguousarray(a))
                slot.in_ptrs[k] = keep[-1].ctypes.data
            else:
                stage[...] = a
        for k, (stage, (dt, tail)) in enumerate(zip(slot.out_stage, self.outputs)):
            if stage is None:
                keep.append(np.empty((batch, *tail), dt))
                slot.out_ptrs[k] = keep[-1].ctypes.data
        return ctypes.cast(self._fn, ctypes.c_void_p).value, slot.args_address, (slot, keep)

    def call1(self, a):
        """__call__([a]) for a plan with one input (only), in fewer steps."""
        if (type(a) is not np.ndarray or a.dtype != self._dtype0 or a.shape[1:] != self._tail0
                or not a.flags.c_contiguous or not 0 < a.shape[0] <= MAX_BATCH):
            return None
        packs = self._packs
        if packs is not None and packs.epoch != weight_epoch.current:
            packs.refresh()
        last = getattr(self._local, "last", None)
        slot = last[1] if last is not None and last[0] == a.shape[0] else self._slot(a.shape[0])
        if not slot.staged:
            return self._call_unstaged(slot, [a], a.shape[0])
        slot.in_stage[0][...] = a
        if self.nthreads is None and self._tunable and not user_chose_threads():
            status = self._run_tuned(slot, a.shape[0])
        else:
            status = self._fn(slot.args_address)   # releases the GIL while native code runs
        if status:
            self.on_status(status)
        return [stage.copy() for stage in slot.out_stage]

    def __call__(self, arrays):
        """Outputs for C-contiguous arrays of the exact dtypes and shapes, else None (take the slow path)."""
        if len(arrays) != len(self.inputs):
            return None
        batch = -1
        for a, (dt, tail) in zip(arrays, self.inputs):
            if type(a) is not np.ndarray or a.dtype != dt or a.shape[1:] != tail or not a.flags.c_contiguous:
                return None
            if batch < 0:
                batch = a.shape[0]
            elif a.shape[0] != batch:
                return None
        if not 0 < batch <= MAX_BATCH:
            return None
        packs = self._packs
        if packs is not None and packs.epoch != weight_epoch.current:
            packs.refresh()
        slot = self._slot(batch)
        if slot.staged:   # the common small case: copy in, call, copy out
            for a, stage in zip(arrays, slot.in_stage):
                stage[...] = a
            if self.nthreads is None and self._tunable and not user_chose_threads():
                status = self._run_tuned(slot, batch)
            else:
                status = self._fn(slot.args_address)   # releases the GIL while native code runs
            if status:
                self.on_status(status)
            return [stage.copy() for stage in slot.out_stage]
        return self._call_unstaged(slot, arrays, batch)

    def _run_tuned(self, slot: Slot, batch: int) -> int:
        """Call the entry on a staged slot with the default offer (the callers check that: a count the
        caller or the user chose is the one in the slot's block); its status. One thread between
        trials costs a lookup; anything else (a trial's call, more threads chosen) goes through the
        tuner and the budget."""
        if self.tuner.steady(batch) == 1:
            return self._call_with(slot, 1)
        return self.tuner.run(batch, None, self._call_with, slot)

    def _call_with(self, slot: Slot, nthreads: int) -> int:
        slot.args[5] = nthreads
        return self._fn(slot.args_address)   # releases the GIL while native code runs

    def _call_unstaged(self, slot: Slot, arrays, batch: int):
        for k, (a, stage) in enumerate(zip(arrays, slot.in_stage)):
            if stage is None:
                slot.in_ptrs[k] = a.ctypes.data
            else:
                stage[...] = a
        outs = [None if stage is not None else np.empty((batch, *tail), dt)
                for stage, (dt, tail) in zip(slot.out_stage, self.outputs)]
        for k, o in enumerate(outs):
            if o is not None:
                slot.out_ptrs[k] = o.ctypes.data
        with self.tuner.call(batch, self.nthreads) as n:
            slot.args[5] = n
            status = self._fn(slot.args_address)
        if status:
            self.on_status(status)
        return [stage.copy() if o is None else o for o, stage in zip(outs, slot.out_stage)]
