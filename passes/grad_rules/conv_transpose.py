"""VJP of conv2d_transpose: a "valid" conv2d of the padded cotangent (dx) and conv2d's filter gradient (dw).

y = T(x, w) places x[i] * w[t] at row i*s + t*d - before; so <y, g> = <x, conv(g', w)> where g' is g
shifted right by `before` and cut (or zero-extended) to (in - 1) * s + eff rows, on which a "valid"
convolution gives exactly `in` rows. The same g' and x give dw through conv2d_filter_grad.
"""
from __future__ import annotations

from kcompile.ir.ops.conv_transpose import transpose_geometries

from . import defvjp


@defvjp("conv2d_transpose")
def _conv2d_transpose(b, node, g):
    x, w = node.inputs
    a = {"strides": node.attrs["strides"], "padding": "valid", "dilations": node.attrs["dilations"], "groups": 1}
    gp = _align(b, g, x, w, node.attrs)
    return [b.conv2d(gp, w, **a), b.conv2d_filter_grad(gp, x, filter_shape=w.shape, **a)]


def _align(b, g, x, w, attrs):
    """g padded by `before` on each spatial axis and cut or zero-extended at the end to the rows a
    valid convolution with x's spatial size as its output reads."""
    pads, cuts = [0, 0], []
    for axis, ((size, before), n, k, s, d) in enumerate(
            zip(transpose_geometries(x.shape, w.shape[:2], attrs), x.shape[1:3], w.shape[:2], attrs["strides"],
                attrs["dilations"]), start=1):
        need = (n - 1) * s + (k - 1) * d + 1
        after = need - before - size
        pads += [before, max(after, 0)]
        if after < 0:
            cuts.append((axis, need))
    gp = b.pad(g, pads=pads + [0, 0]) if any(pads) else g
    if cuts:
        gp = b.slice(gp, axes=[c[0] for c in cuts], starts=[0] * len(cuts), ends=[c[1] for c in cuts])
    return gp
