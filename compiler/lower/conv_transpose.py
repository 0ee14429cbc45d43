"""Lowering of conv2d_transpose onto the input-gradient kernel of the adjoint convolution.

A transposed convolution of x with w is the input gradient of the conv2d (kernel w, same strides and
dilations) whose input has y's size, whose output has x's size and whose padding before is the
transposed convolution's: the kernel gathers, for each y position, the x positions t with
t*s + tap*d - before = position (rows that do not divide by the stride are skipped). Bias and relu
run on the tile in registers, as for conv2d.
"""
from __future__ import annotations

from kcompile.ir.ops.conv_transpose import transpose_geometries

from ..kernels.conv import conv_function
from ..kernels.geometry import Geometry
from . import lowering
from .nn import _call, _claim_epilogue, _rows, _shape


def adjoint_geometry(x_shape, w_shape, attrs) -> Geometry:
    """The conv2d (y-sized input -> x-sized output) whose input gradient is this transposed conv."""
    (oh, pt), (ow, pl) = transpose_geometries(x_shape, w_shape[:2], attrs)
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    return Geometry(oh, ow, w_shape[2], w_shape[0], w_shape[1], x_shape[1], x_shape[2], sh, sw, dh, dw, pt, pl,
                    1, w_shape[3])


@lowering("conv2d_transpose")
def lower_conv2d_transpose(ctx):
    x, w = ctx.node.inputs
    geo = adjoint_geometry(_shape(x), _shape(w), ctx.attrs)
    epi, extra = _claim_epilogue(ctx)
    fn = conv_function(ctx.module, ctx.target.features, x.type.dtype.name, "input_grad", geo, epi)
    _call(ctx, fn, [*ctx.ins, ctx.outs[0]], extra, _rows(ctx, x.type.shape[0]))  # static batch: not N=0
