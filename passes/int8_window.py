"""The window-row layout of an int8 convolution's weights: K ordered by kernel row, each row's kw*cin
values padded to whole k groups, so the kernel builds a pixel's A words with one contiguous copy per
kernel row straight from the NHWC input (compiler/kernels/int8_window.py) instead of one per tap.

For a kernel row r of an NHWC input, the kw*cin values a window reads are contiguous (stride and
dilation along W of 1). Its `span` = ceil(kw*cin / group) * group bytes are copied as they are: the
rows before the last read forward from the window's first byte (the bytes past kw*cin belong to the
next pixels or the next input row, which exist below the last kernel row), the last kernel row reads
backward, ending at its last real byte (never past the input's end; the bytes before its window
belong to the input row above it). The weights of the bytes that are not the window's are zero, so
they add nothing to the products; the kernel's row sums (needed for a nonzero weight zero point)
count only the real bytes.

The layout is used when the convolution has no padding, one group, a dilation along W of 1, kernel
rows of at most MAX_ROW_BYTES (the copies are unrolled; longer rows gain nothing over the generic
per-tap copies, which are whole vectors then) and a layout no more than a quarter (plus one k group)
longer than the dense one's.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir.ops.nn import conv_geometry

MAX_ROW_BYTES = 256


def span_bytes(kw: int, c: int, group: int) -> int:
    """Bytes one kernel row's copy covers: kw*c rounded up to whole k groups."""
    return -(-kw * c // group) * group


def row_starts(kh: int, kw: int, c: int, group: int) -> list:
    """Each kernel row's first byte relative to its window's first byte (the last reads backward)."""
    span = span_bytes(kw, c, group)
    return [0] * (kh - 1) + [kw * c - span]


def window_rows(kh: int, kw: int, c: int, group: int) -> np.ndarray:
    """For each of the kh * span rows of the layout, the HWIO row (kh, kw, c flattened) it holds, or -1."""
    kwc, span = kw * c, span_bytes(kw, c, group)
    rows = []
    for r, start in enumerate(row_starts(kh, kw, c, group)):
        rows += [r * kwc + t + start if 0 <= t + start < kwc else -1 for t in range(span)]
    return np.array(rows, np.int64)


def window_layout(x_shape, w_shape, attrs: dict, group: int):
    """(kh, kw, c) when conv2d_integer(x, w, attrs) can take the window-row layout for k groups of
    `group` bytes (see the module docstring), else None."""
    _, h, w, c = x_shape
    kh, kw = w_shape[:2]
    if (attrs.get("groups", 1) != 1 or attrs["dilations"][1] != 1 or w_shape[2] != c or group < 1
            or kw * c > MAX_ROW_BYTES):
        return None
    for size, k, s, d in ((h, kh, attrs["strides"][0], attrs["dilations"][0]),
                          (w, kw, attrs["strides"][1], attrs["dilations"][1])):
        out, before, after = conv_geometry(size, k, s, d, attrs["padding"])
        if before or after or out < 1 or (out - 1) * s + (k - 1) * d >= size:
            return None
    span = span_bytes(kw, c, group)
    if span != kw * c and (kh < 2 or w * c < group):   # a backward read must stay in the row above
        return None
    dense = -(-kh * kw * c // group)
    return (kh, kw, c) if kh * span // group <= dense * 5 // 4 + 1 else None


def window_weights(w: np.ndarray, group: int) -> np.ndarray:
    """The HWIO int8 weight w as the [kh * span, cout] matrix of the layout (zero rows where no byte is real)."""
    kh, kw, c, cout = w.shape
    rows = window_rows(kh, kw, c, group)
    flat = np.asarray(w, np.int8).reshape(-1, cout)
    out = np.zeros((len(rows), cout), np.int8)
    out[rows >= 0] = flat[rows[rows >= 0]]
    return out
