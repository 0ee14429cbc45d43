"""patches: the im2col of a convolution, so a pruned convolution runs as a sparse matmul.

x [N, *spatial, C] (NWC or NHWC) -> [N, *out_spatial, KW*C] or [N, OH, OW, KH*KW*C]: output element
(n, oh, ow, (kh*KW + kw)*C + c) is x[n, oh*sh + kh*dh - pad_top, ow*sw + kw*dw - pad_left, c], or
pad_value in the padding (Keras "valid"/"same", as conv2d: ir/ops/nn.py). x is float, or 8-bit for
an int8 convolution, whose padding holds the input's zero point (conv2d_integer pads with it). Its last axis runs in the order of
a kernel's (kh, kw, cin) axes, so conv2d(x, W) == patches(x) @ W.reshape(KH*KW*C, COUT) for
groups == 1; the sparsify pass uses that for pruned convolution kernels (passes/sparsify.py).
"""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import require
from .quant import EIGHT_BIT
from .nn import PADDINGS, _pad_spatial, _window, conv_geometry


def _infer(ts, attrs):
    (x,) = ts
    require(x.dtype.is_float or x.dtype in EIGHT_BIT, f"patches needs a float or 8-bit input, got {x}")
    lo, hi = (0, 0) if x.dtype.is_float else (-128, 127) if x.dtype.name == "i8" else (0, 255)
    require(lo <= attrs["pad_value"] <= hi, f"patches: pad_value {attrs['pad_value']} is not a {x.dtype.name} value"
                                            + (" (float inputs pad with 0)" if x.dtype.is_float else ""))
    nsp = len(attrs["kernel"])
    require(nsp in (1, 2) and x.rank == nsp + 2,
            f"patches: a kernel of {nsp} spatial axes needs an input of rank {nsp + 2} (NWC or NHWC), got {x}")
    require(len(attrs["strides"]) == nsp and len(attrs["dilations"]) == nsp,
            f"patches: strides {list(attrs['strides'])} and dilations {list(attrs['dilations'])} need {nsp} values")
    require(all(v > 0 for v in (*attrs["kernel"], *attrs["strides"], *attrs["dilations"])),
            f"patches: kernel, strides and dilations must be positive, got {list(attrs['kernel'])}, "
            f"{list(attrs['strides'])}, {list(attrs['dilations'])}")
    require(all(isinstance(d, int) for d in x.shape[1:]), f"patches needs static spatial sizes and channels, got {x}")
    out = []
    for size, k, s, d in zip(x.shape[1:-1], attrs["kernel"], attrs["strides"], attrs["dilations"]):
        o, _, _ = conv_geometry(size, k, s, d, attrs["padding"])
        require(o > 0, f"patches: input spatial size {size} is too small for kernel {k} (dilation {d}) "
                       f"with padding '{attrs['padding']}'")
        out.append(o)
    return [TensorType((x.shape[0], *out, int(np.prod(attrs["kernel"])) * x.shape[-1]), x.dtype)]


def patches_ref(x, attrs):
    one_d = len(attrs["kernel"]) == 1
    a = {k: ((1, *attrs[k]) if one_d else tuple(attrs[k])) for k in ("kernel", "strides", "dilations")}
    a["padding"] = attrs["padding"]
    x4 = x[:, None] if one_d else x
    xp, outs, _ = _pad_spatial(x4, a, a["kernel"], attrs["pad_value"])
    cols = [xp[_window(xp, i, j, outs, a)] for i in range(a["kernel"][0]) for j in range(a["kernel"][1])]
    out = np.concatenate(cols, axis=-1).astype(x.dtype)
    return out[:, 0] if one_d else out


defop("patches", ("x",), _infer, lambda xs, a, b: [patches_ref(xs[0], a)],
      attrs={"kernel": Attr("ints"), "strides": Attr("ints"), "dilations": Attr("ints"),
             "padding": Attr("str", "valid", PADDINGS), "pad_value": Attr("int", 0)},
      differentiable=False,
      doc="im2col: each output position's receptive field, (kh, kw, c) along the last axis (pad_value in the padding)")
