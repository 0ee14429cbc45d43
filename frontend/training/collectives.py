"""The collectives data-parallel fit needs, each with a deadline instead of a possible hang.

Every collective is MPI's non-blocking form (Iallreduce, Ibcast, Iallgather[v]) polled with Test
until it completes or the deadline passes ($KCOMPILE_DIST_TIMEOUT seconds, default 300). A peer
that died or stopped calling collectives then gives a DistributedError on the others, naming the
operation, instead of blocking them forever; at exit such a process aborts the MPI job (MPI_Abort),
because finalizing with a request still pending would block too. With one process every
collective is the identity and mpi4py is never imported.
"""
from __future__ import annotations

import atexit
import os
import sys
import time

import numpy as np

DEFAULT_TIMEOUT_S = 300.0


class DistributedError(RuntimeError):
    """A collective failed or timed out, or the processes disagree (model structure, weights)."""


def timeout_s() -> float:
    return float(os.environ.get("KCOMPILE_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


class Collectives:
    """In-place collectives over the world's communicator (all processes must call them in order)."""

    def __init__(self, world):
        self.world = world
        self.rank, self.size = world.rank, world.size
        self.comm = world.comm
        self._aborting = False

    # -- the operations ----------------------------------------------------------------------
    def allreduce_sum_(self, buf: np.ndarray, what: str) -> np.ndarray:
        """Sum `buf` over the processes, in place (one message for the whole packed buffer)."""
        if self.size > 1:
            from mpi4py import MPI
            self._wait(self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM), f"allreduce of {what} ({buf.nbytes} bytes)")
        return buf

    def broadcast_(self, buf: np.ndarray, what: str) -> np.ndarray:
        """Overwrite `buf` with rank 0's, in place."""
        if self.size > 1:
            self._wait(self.comm.Ibcast(buf, root=0), f"broadcast of {what}")
        return buf

    def allgather_fixed(self, row: np.ndarray, what: str) -> np.ndarray:
        """Each process's `row` (same shape and dtype everywhere), stacked in rank order."""
        row = np.ascontiguousarray(row)
        if self.size == 1:
            return row[None].copy()
        out = np.empty((self.size,) + row.shape, row.dtype)
        self._wait(self.comm.Iallgather(row, out), f"allgather of {what}")
        return out

    def allgather_rows(self, arrays: list, counts, what: str) -> list:
        """Each array's rows from every process (counts[r] rows on rank r), concatenated in rank order.

        One Iallgatherv moves all the arrays: each process sends its arrays' bytes back to back."""
        arrays = [np.ascontiguousarray(a) for a in arrays]
        if self.size == 1:
            return arrays
        from mpi4py import MPI
        row_bytes = [a.dtype.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)) for a in arrays]
        per_row = sum(row_bytes)
        send = np.concatenate([a.view(np.uint8).reshape(-1) for a in arrays]) if arrays else np.empty(0, np.uint8)
        sizes = [int(c) * per_row for c in counts]
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
        recv = np.empty(sum(sizes), np.uint8)
        self._wait(self.comm.Iallgatherv([send, MPI.BYTE], [recv, sizes, displs, MPI.BYTE]), f"allgather of {what}")
        out = []
        for k, a in enumerate(arrays):   # rank r's block: its arrays one after another
            skip = sum(row_bytes[:k])
            parts = [recv[d + skip * int(c):d + (skip + row_bytes[k]) * int(c)] for d, c in zip(displs, counts)]
            out.append(np.concatenate(parts).view(a.dtype).reshape((-1,) + a.shape[1:]))
        return out

    # -- the deadline ------------------------------------------------------------------------
    def _wait(self, request, what: str) -> None:
        """Poll the request until done; past the deadline raise, and abort the job at exit."""
        limit = timeout_s()
        start = time.monotonic()
        pause = 0.0
        while not request.Test():
            waited = time.monotonic() - start
            if waited > limit:
                self._abort_at_exit()
                raise DistributedError(
                    f"process {self.rank} of {self.size}: {what} did not complete within {limit:g} s "
                    "($KCOMPILE_DIST_TIMEOUT): another process died, hangs, or left the training loop early "
                    "(an exception on one rank only, or a different number of steps)")
            time.sleep(pause)   # yield the core: on a busy host the late peer may need it
            pause = min(1e-3, pause * 2 + 1e-5)

    def _abort_at_exit(self):
        if not self._aborting:
            self._aborting = True
            comm = self.comm
            atexit.register(lambda: (sys.stderr.flush(), comm.Abort(1)))
