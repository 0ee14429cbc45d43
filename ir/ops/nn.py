"""Neural-network ops in NHWC: softmax, conv1d/conv2d (+ gradients), pooling 1d/2d (+ gradients).

Padding follows Keras: "valid" drops what does not fit (floor); "same" gives ceil(in / stride)
outputs with the total padding split as (total // 2 before, rest after); conv1d also has "causal"
(all padding before). Average pooling with "same" divides by the count of real (unpadded) inputs.
"""
from __future__ import annotations

import numpy as np

from ..registry import Attr, defop
from ..types import TensorType
from ._util import concrete, float_only, fmt_shape, norm_axis, require, same_dtype

PADDINGS = ("valid", "same")


def conv_geometry(size: int, k: int, stride: int, dilation: int, padding: str):
    """(output size, pad before, pad after) along one spatial axis."""
    # a kernel's leading dimension may parse as a symbol (f32[N,3,2,7]); a window size must be static
    require(not isinstance(k, str), f"the kernel's spatial size must be static, got the symbol {k!r}")
    eff = (k - 1) * dilation + 1
    if padding == "valid":
        return max((size - eff) // stride + 1, 0), 0, 0
    if padding == "causal":
        return max((size + eff - 1 - eff) // stride + 1, 0), eff - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return out, total // 2, total - total // 2


# -- softmax -----------------------------------------------------------------------------
def _softmax_infer(ts, attrs):
    float_only(ts[0], "softmax")
    norm_axis(attrs["axis"], ts[0].rank)
    return [ts[0]]


def _softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


defop("softmax", ("x",), _softmax_infer, lambda xs, a, b: [_softmax(xs[0], a["axis"]).astype(xs[0].dtype)],
      attrs={"axis": Attr("int", -1)}, doc="exp(x - max) / sum along axis")
defop("log_softmax", ("x",), _softmax_infer, lambda xs, a, b: [_log_softmax(xs[0], a["axis"]).astype(xs[0].dtype)],
      attrs={"axis": Attr("int", -1)}, doc="x - max - log(sum(exp(x - max))) along axis")


# -- conv2d ------------------------------------------------------------------------------
CONV_ATTRS = {
    "strides": Attr("ints", (1, 1)),
    "padding": Attr("str", "valid", PADDINGS),
    "dilations": Attr("ints", (1, 1)),
    "groups": Attr("int", 1),
}


def _check_conv_attrs(attrs, nsp: int):
    require(len(attrs["strides"]) == nsp and len(attrs["dilations"]) == nsp,
            f"strides {list(attrs['strides'])} and dilations {list(attrs['dilations'])} need {nsp} values")
    require(all(s > 0 for s in attrs["strides"]) and all(d > 0 for d in attrs["dilations"]),
            "strides and dilations must be positive")
    require(attrs["groups"] > 0, f"groups must be positive, got {attrs['groups']}")


def _conv_out_shape(xshape, kshape, cout, attrs):
    spatial = []
    for size, k, s, d in zip(xshape[1:-1], kshape, attrs["strides"], attrs["dilations"]):
        out, _, _ = conv_geometry(size, k, s, d, attrs["padding"])
        require(out > 0, f"input spatial size {size} is too small for kernel {k} (dilation {d}) "
                         f"with padding '{attrs['padding']}'")
        spatial.append(out)
    return (xshape[0], *spatial, cout)


def _conv2d_infer(ts, attrs):
    x, w = ts
    same_dtype(ts)
    float_only(x, "conv2d")
    _check_conv_attrs(attrs, 2)
    require(x.rank == 4, f"conv2d input must be NHWC (rank 4), got {x}")
    require(w.rank == 4, f"conv2d kernel must be (kh, kw, in/groups, out), got {w}")
    g = attrs["groups"]
    require(x.shape[3] == w.shape[2] * g and w.shape[3] % g == 0,
            f"conv2d channels: input {x} has {x.shape[3]} channels, kernel {w} with groups={g} expects "
            f"{w.shape[2] * g} (and out channels divisible by groups)")
    return [TensorType(_conv_out_shape(x.shape, w.shape[:2], w.shape[3], attrs), x.dtype)]


def _pad_spatial(x, attrs, kshape, value=0.0):
    pads, outs = [(0, 0)], []
    for size, k, s, d in zip(x.shape[1:-1], kshape, attrs["strides"], attrs["dilations"]):
        out, before, after = conv_geometry(size, k, s, d, attrs["padding"])
        pads.append((before, after))
        outs.append(out)
    pads.append((0, 0))
    return np.pad(x, pads, constant_values=value), outs, pads


def _window(xp, i, j, outs, attrs):
    (sh, sw), (dh, dw) = attrs["strides"], attrs["dilations"]
    return (slice(None), slice(i * dh, i * dh + (outs[0] - 1) * sh + 1, sh),
            slice(j * dw, j * dw + (outs[1] - 1) * sw + 1, sw))


def _group_slices(cin, cout, g):
    ci, co = cin // g, cout // g
    return [(slice(k * ci, (k + 1) * ci), slice(k * co, (k + 1) * co)) for k in range(g)]


def conv2d_ref(x, w, attrs):
    xp, outs, _ = _pad_spatial(x, attrs, w.shape[:2])
    out = np.zeros((x.shape[0], outs[0], outs[1], w.shape[3]), x.dtype)
    for cs, os in _group_slices(x.shape[3], w.shape[3], attrs["groups"]):
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                win = _window(xp, i, j, outs, attrs)
                out[..., os] += xp[win + (cs,)] @ w[i, j][:, os]
    return out


check_conv_attrs, conv_out_shape = _check_conv_attrs, _conv_out_shape  # shared with ops/quant.py

defop("conv2d", ("x", "w"), _conv2d_infer, lambda xs, a, b: [conv2d_ref(xs[0], xs[1], a)], attrs=CONV_ATTRS,
      doc="NHWC convolution (cross-correlation) with kernel (kh, kw, cin/groups, cout)", traits=("anchor",))


def _conv2d_input_grad_infer(ts, attrs):
    dy, w = ts
    same_dtype(ts)
    _check_conv_attrs(attrs, 2)
    shape = attrs["input_shape"]
    require(len(shape) == 4 and dy.rank == 4, f"conv2d_input_grad needs NHWC dy and input_shape, got {dy}, "
                                              f"{fmt_shape(shape)}")
    expect = _conv_out_shape(shape, w.shape[:2], w.shape[3], attrs)
    require(tuple(dy.shape) == tuple(expect), f"conv2d_input_grad: dy {dy} does not match forward output "
                                              f"{fmt_shape(expect)}")
    return [TensorType(shape, dy.dtype)]


def conv2d_input_grad_ref(dy, w, attrs, input_shape):
    dx = np.zeros(input_shape, dy.dtype)
    dxp, outs, pads = _pad_spatial(dx, attrs, w.shape[:2])
    for cs, os in _group_slices(input_shape[3], w.shape[3], attrs["groups"]):
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                win = _window(dxp, i, j, outs, attrs)
                dxp[win + (cs,)] += dy[..., os] @ w[i, j][:, os].T
    (pt, pb), (pl, pr) = pads[1], pads[2]
    return np.ascontiguousarray(dxp[:, pt:dxp.shape[1] - pb, pl:dxp.shape[2] - pr, :])


defop("conv2d_input_grad", ("dy", "w"), _conv2d_input_grad_infer,
      lambda xs, a, b: [conv2d_input_grad_ref(xs[0], xs[1], a, concrete(a["input_shape"], xs[0].shape[0]))],
      attrs={**CONV_ATTRS, "input_shape": Attr("shape")}, doc="gradient of conv2d with respect to its input")


def _conv2d_filter_grad_infer(ts, attrs):
    x, dy = ts
    same_dtype(ts)
    _check_conv_attrs(attrs, 2)
    fs = attrs["filter_shape"]
    require(len(fs) == 4 and x.rank == 4 and dy.rank == 4, f"conv2d_filter_grad needs NHWC x, dy, got {x}, {dy}")
    expect = _conv_out_shape(x.shape, fs[:2], fs[3], attrs)
    require(tuple(dy.shape) == tuple(expect), f"conv2d_filter_grad: dy {dy} does not match forward output "
                                              f"{fmt_shape(expect)}")
    require(x.shape[3] == fs[2] * attrs["groups"], f"conv2d_filter_grad: {x} does not fit filter {fmt_shape(fs)}")
    return [TensorType(fs, x.dtype)]


def conv2d_filter_grad_ref(x, dy, attrs, fs):
    xp, outs, _ = _pad_spatial(x, attrs, fs[:2])
    dw = np.zeros(fs, x.dtype)
    for cs, os in _group_slices(x.shape[3], fs[3], attrs["groups"]):
        for i in range(fs[0]):
            for j in range(fs[1]):
                patch = xp[_window(xp, i, j, outs, attrs) + (cs,)]
                dw[i, j][:, os] = np.tensordot(patch, dy[..., os], axes=([0, 1, 2], [0, 1, 2]))
    return dw


defop("conv2d_filter_grad", ("x", "dy"), _conv2d_filter_grad_infer,
      lambda xs, a, b: [conv2d_filter_grad_ref(xs[0], xs[1], a, a["filter_shape"])],
      attrs={**CONV_ATTRS, "filter_shape": Attr("ints")}, doc="gradient of conv2d with respect to its kernel")


# -- conv1d (NWC): the reference runs conv2d with H = 1 -----------------------------------
CONV1D_ATTRS = {"strides": Attr("int", 1), "padding": Attr("str", "valid", PADDINGS + ("causal",)),
                "dilations": Attr("int", 1), "groups": Attr("int", 1)}


def conv1d_as_2d(attrs):
    """conv1d attrs as conv2d attrs over (1, W); 'causal' becomes explicit left padding by the caller."""
    pad = "valid" if attrs["padding"] == "causal" else attrs["padding"]
    return {"strides": (1, attrs["strides"]), "padding": pad, "dilations": (1, attrs["dilations"]),
            "groups": attrs["groups"]}


def _conv1d_infer(ts, attrs):
    x, w = ts
    require(x.rank == 3, f"conv1d input must be NWC (rank 3), got {x}")
    require(w.rank == 3, f"conv1d kernel must be (k, in/groups, out), got {w}")
    x2 = x.with_shape((x.shape[0], 1, *x.shape[1:]))
    if attrs["padding"] == "causal":
        x2 = x2.with_shape((x.shape[0], 1, x.shape[1] + (w.shape[0] - 1) * attrs["dilations"], x.shape[2]))
    y = _conv2d_infer([x2, w.with_shape((1, *w.shape))], conv1d_as_2d(attrs))[0]
    return [y.with_shape((y.shape[0], y.shape[2], y.shape[3]))]


def conv1d_ref(x, w, attrs):
    if attrs["padding"] == "causal":
        x = np.pad(x, [(0, 0), ((w.shape[0] - 1) * attrs["dilations"], 0), (0, 0)])
    return conv2d_ref(x[:, None], w[None], conv1d_as_2d(attrs))[:, 0]


defop("conv1d", ("x", "w"), _conv1d_infer, lambda xs, a, b: [conv1d_ref(xs[0], xs[1], a)], attrs=CONV1D_ATTRS,
      doc="NWC convolution with kernel (k, cin/groups, cout); padding valid/same/causal", traits=("anchor",))


# -- pooling -----------------------------------------------------------------------------
POOL_ATTRS = {"pool_size": Attr("ints"), "strides": Attr("ints"), "padding": Attr("str", "valid", PADDINGS)}


def _pool_attrs(attrs):
    return {**attrs, "dilations": (1,) * len(attrs["pool_size"])}


INT8_POOL_DTYPES = ("i8", "u8")   # max pooling is exact on 8-bit values (ONNX MaxPool takes them too)


def _pool_infer_nd(nsp, integers=False):
    """integers: 8-bit integer inputs are allowed too (max pooling: max commutes with quantization)."""
    def infer(ts, attrs):
        x = ts[0]
        require(x.rank == nsp + 2, f"pooling input must have rank {nsp + 2} (N, spatial..., C), got {x}")
        require(len(attrs["pool_size"]) == nsp and len(attrs["strides"]) == nsp,
                f"pool_size and strides need {nsp} values, got {list(attrs['pool_size'])}, {list(attrs['strides'])}")
        require(all(p > 0 for p in attrs["pool_size"]) and all(s > 0 for s in attrs["strides"]),
                "pool_size and strides must be positive")
        require(x.dtype.is_float or (integers and x.dtype.name in INT8_POOL_DTYPES),
                f"{'max pooling needs a float or 8-bit integer' if integers else 'pooling needs a float'} input, "
                f"got {x}")
        return [x.with_shape(_conv_out_shape(x.shape, attrs["pool_size"], x.shape[-1], _pool_attrs(attrs)))]
    return infer


def _to2d(x, attrs):
    """View a 1-D pooling problem as 2-D with H = 1."""
    a = {"pool_size": (1, *attrs["pool_size"]), "strides": (1, *attrs["strides"]), "padding": attrs["padding"]}
    return x[:, None], a


def _lowest(dtype):
    """The padding value of max pooling: -inf, or an integer type's minimum (no window is all padding)."""
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def max_pool2d_ref(x, attrs):
    a = _pool_attrs(attrs)
    xp, outs, _ = _pad_spatial(x, a, attrs["pool_size"], value=_lowest(x.dtype))
    out = np.full((x.shape[0], outs[0], outs[1], x.shape[3]), _lowest(x.dtype), x.dtype)
    for i in range(attrs["pool_size"][0]):
        for j in range(attrs["pool_size"][1]):
            np.maximum(out, xp[_window(xp, i, j, outs, a)], out=out)
    return out


def _pool_counts(x_shape, attrs, dtype):
    a = _pool_attrs(attrs)
    ones = np.ones((1, *x_shape[1:3], 1), dtype)
    op, outs, _ = _pad_spatial(ones, a, attrs["pool_size"])
    cnt = np.zeros((1, outs[0], outs[1], 1), dtype)
    for i in range(attrs["pool_size"][0]):
        for j in range(attrs["pool_size"][1]):
            cnt += op[_window(op, i, j, outs, a)]
    return cnt


def avg_pool2d_ref(x, attrs):
    a = _pool_attrs(attrs)
    xp, outs, _ = _pad_spatial(x, a, attrs["pool_size"])
    out = np.zeros((x.shape[0], outs[0], outs[1], x.shape[3]), x.dtype)
    for i in range(attrs["pool_size"][0]):
        for j in range(attrs["pool_size"][1]):
            out += xp[_window(xp, i, j, outs, a)]
    return out / _pool_counts(x.shape, attrs, x.dtype)


def max_pool2d_grad_ref(x, dy, attrs):
    """Each output's gradient goes to the first maximum of its window (row-major order)."""
    a = _pool_attrs(attrs)
    y = max_pool2d_ref(x, attrs)
    xp, outs, pads = _pad_spatial(x, a, attrs["pool_size"], value=-np.inf)
    dxp = np.zeros_like(xp)
    taken = np.zeros(y.shape, bool)
    for i in range(attrs["pool_size"][0]):
        for j in range(attrs["pool_size"][1]):
            win = _window(xp, i, j, outs, a)
            hit = (xp[win] == y) & ~taken
            dxp[win] += np.where(hit, dy, 0)
            taken |= hit
    (pt, pb), (pl, pr) = pads[1], pads[2]
    return np.ascontiguousarray(dxp[:, pt:dxp.shape[1] - pb, pl:dxp.shape[2] - pr, :])


def avg_pool2d_grad_ref(dy, attrs, input_shape):
    a = _pool_attrs(attrs)
    dx = np.zeros(input_shape, dy.dtype)
    dxp, outs, pads = _pad_spatial(dx, a, attrs["pool_size"])
    g = dy / _pool_counts(input_shape, attrs, dy.dtype)
    for i in range(attrs["pool_size"][0]):
        for j in range(attrs["pool_size"][1]):
            dxp[_window(dxp, i, j, outs, a)] += g
    (pt, pb), (pl, pr) = pads[1], pads[2]
    return np.ascontiguousarray(dxp[:, pt:dxp.shape[1] - pb, pl:dxp.shape[2] - pr, :])


def _pool1d(fn):
    def ref(x, attrs):
        x2, a2 = _to2d(x, attrs)
        return fn(x2, a2)[:, 0]
    return ref


defop("max_pool2d", ("x",), _pool_infer_nd(2, integers=True), lambda xs, a, b: [max_pool2d_ref(xs[0], a)], attrs=POOL_ATTRS,
      doc="max over windows (NHWC); f32/f64, or i8/u8 exactly")
defop("avg_pool2d", ("x",), _pool_infer_nd(2), lambda xs, a, b: [avg_pool2d_ref(xs[0], a)], attrs=POOL_ATTRS,
      doc="mean over windows (NHWC); 'same' divides by the count of real inputs")
defop("max_pool1d", ("x",), _pool_infer_nd(1, integers=True), lambda xs, a, b: [_pool1d(max_pool2d_ref)(xs[0], a)],
      attrs=POOL_ATTRS, doc="max over windows (NWC)")
defop("avg_pool1d", ("x",), _pool_infer_nd(1), lambda xs, a, b: [_pool1d(avg_pool2d_ref)(xs[0], a)],
      attrs=POOL_ATTRS, doc="mean over windows (NWC)")


def _max_pool_grad_infer(ts, attrs):
    x, dy = ts
    same_dtype(ts)
    y = _pool_infer_nd(2)([x], attrs)[0]
    require(dy.shape == y.shape, f"max_pool2d_grad: dy {dy} does not match pooled output {y}")
    return [x]


def _avg_pool_grad_infer(ts, attrs):
    dy = ts[0]
    shape = attrs["input_shape"]
    x = dy.with_shape(shape)
    y = _pool_infer_nd(2)([x], {k: attrs[k] for k in POOL_ATTRS})[0]
    require(dy.shape == y.shape, f"avg_pool2d_grad: dy {dy} does not match pooled output {y}")
    return [x]


defop("max_pool2d_grad", ("x", "dy"), _max_pool_grad_infer,
      lambda xs, a, b: [max_pool2d_grad_ref(xs[0], xs[1], a)], attrs=POOL_ATTRS,
      doc="gradient of max_pool2d: dy routed to the first max of each window")
defop("avg_pool2d_grad", ("dy",), _avg_pool_grad_infer,
      lambda xs, a, b: [avg_pool2d_grad_ref(xs[0], {k: a[k] for k in POOL_ATTRS},
                                            concrete(a["input_shape"], xs[0].shape[0]))],
      attrs={**POOL_ATTRS, "input_shape": Attr("shape")}, doc="gradient of avg_pool2d")
