"""Pass "prepack-int8": int8 GEMM weights that are parameters get a packed companion parameter.

The int8 GEMM (compiler/kernels/int8_gemm.py) multiplies by B in k-group panels. When B is a graph
input it packs B on every call; when B is a parameter, this pass adds a parameter holding B already
packed, named packed_name(source, group, nr, groups), so the kernel reads it in place. Its value is a
pure function of the source parameter (pack_weights), computed here when the graph carries values
(artifacts: weights.bin holds it) and by the in-process JIT from the arrays it is called with
(compiler/jit.py: once per weight array, repacked when a caller passes another array).

Layout for B viewed as [K, groups * n] (matmul_integer: the [K, N] matrix; conv2d_integer: HWIO
reshaped to [KH*KW*CIN_G, COUT], group g owning columns g*n .. g*n+n-1), with kg = ceil(K / group)
and P = ceil(n / nr) panels per group:
  values [0, groups*P*kg*nr*group): per group, per panel of nr columns, per k group, per column its
                                   `group` k values (zeros past K and past n); each an int8 byte, or
                                   with `elem` 2 (AVX2, name suffix "s16") an int16, little-endian
  then i32 [groups * P * nr]:      each column's sum over K (zero for padding columns)
The tile width follows the kernel's rule: one vector (`lanes` columns) when n fits one, else nr.
A convolution that can take the window-row layout (passes/int8_window.py) is packed from that
layout's [kh * span, cout] matrix instead; its packed name ends in `w<kh>x<kw>x<cin>`.
Parameters updated in place by a training step are never packed (their values change per step).
"""
from __future__ import annotations

import re

import numpy as np

from kcompile.ir import Graph, TensorType

from .int8_window import window_layout, window_weights
from .manager import register_pass
from .packed_params import with_packed_params

PACKED_OPS = ("matmul_integer", "conv2d_integer")
_TAG = "@int8-packed"
_NAME = re.compile(rf"^(?P<source>.+){_TAG}/g(?P<group>\d+)nr(?P<nr>\d+)x(?P<groups>\d+)(?P<wide>s16)?"
                   r"(?P<window>w\d+x\d+x\d+)?$")


def packed_name(source: str, group: int, nr: int, groups: int, window=None, elem: int = 1) -> str:
    """window: (kh, kw, cin) for a convolution packed in the window-row layout, else None; elem: bytes
    per packed value (2: sign-extended to int16)."""
    tail = "" if window is None else "w" + "x".join(map(str, window))
    return f"{source}{_TAG}/g{group}nr{nr}x{groups}{'s16' if elem == 2 else ''}{tail}"


def parse_packed_name(name: str):
    """(source, group, nr, groups) of a packed parameter's name, else None."""
    m = _NAME.match(name)
    return None if m is None else (m["source"], int(m["group"]), int(m["nr"]), int(m["groups"]))


def packed_value(name: str, w: np.ndarray) -> np.ndarray:
    """The bytes the packed parameter `name` holds for its source weight w."""
    m = _NAME.match(name)
    group, nr, groups, elem = int(m["group"]), int(m["nr"]), int(m["groups"]), 2 if m["wide"] else 1
    if m["window"]:
        return pack_weights(window_weights(w, group), group, nr, groups, elem)
    return pack_weights(w, group, nr, groups, elem)


def tile_columns(n: int, nr: int, lanes: int) -> int:
    """Columns per panel for n columns per group (compiler/kernels/int8_isa.Int8Isa.for_columns)."""
    return lanes if n <= lanes else nr


def packed_nbytes(k: int, cols: int, group: int, nr: int, groups: int, elem: int = 1) -> int:
    n = cols // groups
    panels, kg = -(-n // nr), -(-k // group)
    return groups * panels * nr * (kg * group * elem + 4)


def pack_weights(w: np.ndarray, group: int, nr: int, groups: int, elem: int = 1) -> np.ndarray:
    """The packed bytes (int8, 1-D) of the int8 weight w ([K, N] or HWIO) in the layout above."""
    b = np.asarray(w, np.int8).reshape(-1, w.shape[-1])
    k, cols = b.shape
    n = cols // groups
    panels, kg = -(-n // nr), -(-k // group)
    padded = np.zeros((kg * group, groups, panels * nr), np.int8)
    padded[:k, :, :n] = b.reshape(k, groups, n)
    # [kg, group, groups, panels, nr] -> [groups, panels, kg, nr, group]
    tiles = padded.reshape(kg, group, groups, panels, nr).transpose(2, 3, 0, 4, 1)
    colsum = padded.sum(axis=0, dtype=np.int32).reshape(-1)   # (sum would widen to int64)
    values = np.ascontiguousarray(tiles).reshape(-1)
    if elem == 2:
        values = values.astype("<i2").view(np.int8)
    return np.concatenate([values, colsum.astype("<i4").view(np.int8)])


@register_pass("prepack-int8")
def prepack_int8(graph: Graph, group: int = 0, nr: int = 0, lanes: int = 0, elem: int = 1) -> Graph:
    """Add a packed copy of each int8 GEMM weight parameter (group/nr/lanes/elem: the target's int8 tile)."""
    if group <= 0:
        return graph

    def companion(node):
        w = node.inputs[1] if node.op in PACKED_OPS else None
        if w is None or not w.is_param or w.dtype.name != "i8":
            return None
        shape = w.type.shape
        groups = node.attrs.get("groups", 1) if node.op == "conv2d_integer" else 1
        k, cols = int(np.prod(shape[:-1])), shape[-1]
        width = tile_columns(cols // groups, nr, lanes)
        window = window_layout(node.inputs[0].type.shape, shape, node.attrs, group) \
            if node.op == "conv2d_integer" else None
        if window is not None:
            k = window[0] * -(-window[1] * window[2] // group) * group
        return (w, packed_name(w.param_name, group, width, groups, window, elem),
                TensorType([packed_nbytes(k, cols, group, width, groups, elem)], "i8"), packed_value)

    return with_packed_params(graph, companion)
