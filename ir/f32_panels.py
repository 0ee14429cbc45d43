"""The panel layout of prepacked float32 GEMM weights (passes/f32_prepack.py) and its packed names.

For B the [K, N] matrix a matmul multiplies by (the weight w, or w^T when transpose_b), NR columns
per panel and P = ceil(N / NR) panels: f32[P * K * NR], element (k, j) of panel p at
(p * K + k) * NR + j, i.e. column p * NR + j of row k; zeros past N. NR follows the GEMM's tile
rule (compiler/kernels/config.gemm_shape: one vector of columns when N fits one, else two). The
companion parameter of weight `source` is named `<source>@f32-packed/nr<NR>[t]` (t: transposed).

Pure NumPy, in ir/ because the pass that adds such parameters, the JIT that fills them and the
artifact loader that refreshes them (runtime/native.py) all need it.
"""
from __future__ import annotations

import re
import threading

import numpy as np

from . import weight_epoch

_TAG = "@f32-packed"
_NAME = re.compile(rf"^(?P<source>.+){_TAG}/nr(?P<nr>\d+)(?P<t>t?)$")


def packed_name(source: str, nr: int, transposed: bool) -> str:
    return f"{source}{_TAG}/nr{nr}{'t' if transposed else ''}"


def parse_packed_name(name: str):
    """(source, nr, transposed) of a packed parameter's name, else None."""
    m = _NAME.match(name)
    return None if m is None else (m["source"], int(m["nr"]), bool(m["t"]))


def tile_columns(n: int, lanes: int) -> int:
    """NR of the f32 GEMM for N columns (compiler/kernels/config.gemm_shape's rule)."""
    return lanes if n <= lanes else 2 * lanes


def packed_size(k: int, n: int, nr: int) -> int:
    return -(-n // nr) * k * nr


def pack_weights(w: np.ndarray, nr: int, transposed: bool, out: np.ndarray | None = None) -> np.ndarray:
    """The panels (f32, 1-D) of w ([K, N], or [N, K] when transposed) in the layout above; written
    into `out` when given (a repack keeps the array the compiled code points at)."""
    b = np.asarray(w, np.float32)
    b = b.T if transposed else b
    k, n = b.shape
    panels = -(-n // nr)
    dst = np.empty(panels * k * nr, np.float32) if out is None else out
    view = dst.reshape(panels, k, nr)
    full = n // nr
    view[:full] = b[:, :full * nr].reshape(k, full, nr).transpose(1, 0, 2)
    if full < panels:
        view[full, :, :n - full * nr] = b[:, full * nr:]
        view[full, :, n - full * nr:] = 0
    return dst


def packed_value(name: str, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The value the packed parameter `name` holds for its source weight w."""
    _, nr, transposed = parse_packed_name(name)
    return pack_weights(w, nr, transposed, out)


class Repacker:
    """Packed copies kept equal to their source weights: pairs [(source array, packed array, packed
    name)], repacked in place (compiled code keeps pointing at the same memory) when the weight epoch
    (ir/weight_epoch.py) moved since they were packed. The JIT's prepared calls (compiler/jit.py) and a
    loaded artifact (runtime/packed_weights.py) hold one; the call paths compare `epoch` before each
    call. A packed array may be shared among users of the same source, for whom a repack is right too."""

    def __init__(self, pairs):
        self.pairs = list(pairs)
        self.epoch = weight_epoch.current
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def refresh(self) -> None:
        with self._lock:
            epoch = weight_epoch.current   # read first: a write during the repack leaves it stale
            for src, packed, name in self.pairs:
                packed_value(name, src, packed.reshape(-1))
            self.epoch = epoch

    def refresh_if_stale(self) -> None:
        if self.pairs and self.epoch != weight_epoch.current:
            self.refresh()
