"""Static geometry of an NHWC convolution or pooling window (Keras padding rules from ir/ops/nn.py)."""
from __future__ import annotations

from dataclasses import dataclass

from kcompile.ir.ops.nn import conv_geometry


@dataclass(frozen=True)
class Geometry:
    """x: (batch, h, w, c) -> y: (batch, oh, ow, cout) through a kh x kw window."""

    h: int
    w: int
    c: int
    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int     # padding before, rows
    pl: int     # padding before, columns
    groups: int = 1
    cout: int = 0

    @property
    def cin_g(self) -> int:
        return self.c // self.groups

    @property
    def cout_g(self) -> int:
        return self.cout // self.groups


def geometry2d(x_shape, window, strides, dilations, padding, groups=1, cout=0) -> Geometry:
    """Geometry of a 2-D window op on x_shape (N, H, W, C)."""
    _, h, w, c = x_shape
    oh, pt, _ = conv_geometry(h, window[0], strides[0], dilations[0], padding)
    ow, pl, _ = conv_geometry(w, window[1], strides[1], dilations[1], padding)
    return Geometry(h, w, c, window[0], window[1], oh, ow, strides[0], strides[1], dilations[0], dilations[1],
                    pt, pl, groups, cout)


def geometry1d(x_shape, window, stride, dilation, padding, groups=1, cout=0) -> Geometry:
    """A 1-D op on (N, W, C) as a 2-D one with H = 1 ('causal' pads only on the left)."""
    n, w, c = x_shape
    return geometry2d((n, 1, w, c), (1, window), (1, stride), (1, dilation), padding, groups, cout)
