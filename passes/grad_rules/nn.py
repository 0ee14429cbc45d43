"""VJPs of the neural-network ops: softmax, convolutions (and their grad ops), pooling (and theirs)."""
from __future__ import annotations

from . import defvjp
from ._emit import reshape_to

_CONV_KEYS = ("strides", "padding", "dilations", "groups")
_POOL_KEYS = ("pool_size", "strides", "padding")


def _conv_attrs(node):
    return {k: node.attrs[k] for k in _CONV_KEYS}


@defvjp("softmax")
def _softmax(b, node, g):
    y, axis = node.outputs[0], node.attrs["axis"]
    gy = b.mul(g, y)
    return [b.sub(gy, b.mul(y, b.reduce_sum(gy, axes=[axis], keepdims=True)))]


@defvjp("log_softmax")
def _log_softmax(b, node, g):
    y, axis = node.outputs[0], node.attrs["axis"]
    return [b.sub(g, b.mul(b.exp(y), b.reduce_sum(g, axes=[axis], keepdims=True)))]


# -- conv2d and its two gradient ops: each is linear in each input, so the VJPs cycle among them
@defvjp("conv2d")
def _conv2d(b, node, g):
    x, w = node.inputs
    a = _conv_attrs(node)
    return [b.conv2d_input_grad(g, w, input_shape=x.shape, **a), b.conv2d_filter_grad(x, g, filter_shape=w.shape, **a)]


@defvjp("conv2d_input_grad")
def _conv2d_input_grad(b, node, g):  # dx = L(dy, w); <L(dy, w), g> = <dy, conv2d(g, w)>
    dy, w = node.inputs
    a = _conv_attrs(node)
    return [b.conv2d(g, w, **a), b.conv2d_filter_grad(g, dy, filter_shape=w.shape, **a)]


@defvjp("conv2d_filter_grad")
def _conv2d_filter_grad(b, node, g):  # dw = F(x, dy); <F(x, dy), g> = <dy, conv2d(x, g)>
    x, dy = node.inputs
    a = _conv_attrs(node)
    return [b.conv2d_input_grad(dy, g, input_shape=x.shape, **a), b.conv2d(x, g, **a)]


@defvjp("conv1d")
def _conv1d(b, node, g):
    """Through conv2d over (1, W); 'causal' is an explicit left pad of the input, undone after."""
    x, w = node.inputs
    a = node.attrs
    left = (w.shape[0] - 1) * a["dilations"] if a["padding"] == "causal" else 0
    x2 = b.expand_dims(x, axes=[1])
    if left:
        x2 = b.pad(x2, pads=[0, 0, 0, 0, left, 0, 0, 0])
    w2, g2 = b.expand_dims(w, axes=[0]), b.expand_dims(g, axes=[1])
    a2 = {"strides": (1, a["strides"]), "padding": "valid" if left else a["padding"],
          "dilations": (1, a["dilations"]), "groups": a["groups"]}
    dx2 = b.conv2d_input_grad(g2, w2, input_shape=x2.shape, **a2)
    if left:
        dx2 = b.slice(dx2, axes=[2], starts=[left], ends=[left + x.shape[1]])
    dw2 = b.conv2d_filter_grad(x2, g2, filter_shape=w2.shape, **a2)
    return [reshape_to(b, dx2, x.type), reshape_to(b, dw2, w.type)]


# -- pooling -------------------------------------------------------------------------------
def _pool_attrs(node, one_d=False):
    a = {k: node.attrs[k] for k in _POOL_KEYS}
    if one_d:  # view (N, W, C) as (N, 1, W, C)
        a["pool_size"], a["strides"] = (1, *a["pool_size"]), (1, *a["strides"])
    return a


@defvjp("max_pool2d")
def _max_pool2d(b, node, g):  # the gradient goes to the first maximum of each window
    return [b.max_pool2d_grad(node.inputs[0], g, **_pool_attrs(node))]


@defvjp("avg_pool2d")
def _avg_pool2d(b, node, g):
    x = node.inputs[0]
    return [b.avg_pool2d_grad(g, input_shape=x.shape, **_pool_attrs(node))]


@defvjp("max_pool1d")
def _max_pool1d(b, node, g):
    x = node.inputs[0]
    dx = b.max_pool2d_grad(b.expand_dims(x, axes=[1]), b.expand_dims(g, axes=[1]), **_pool_attrs(node, True))
    return [reshape_to(b, dx, x.type)]


@defvjp("avg_pool1d")
def _avg_pool1d(b, node, g):
    x = node.inputs[0]
    x2 = x.type.with_shape((x.shape[0], 1, *x.shape[1:]))
    dx = b.avg_pool2d_grad(b.expand_dims(g, axes=[1]), input_shape=x2.shape, **_pool_attrs(node, True))
    return [reshape_to(b, dx, x.type)]


@defvjp("avg_pool2d_grad")
def _avg_pool2d_grad(b, node, g):  # linear in dy, and its adjoint is avg_pool2d itself
    return [b.avg_pool2d(g, **_pool_attrs(node))]


@defvjp("max_pool2d_grad")
def _max_pool2d_grad(b, node, g):
    """Linear in dy: its adjoint reads g at each window's first maximum. Zero in x (a.e.)."""
    x = node.inputs[0]
    return [None, _read_at_first_max(b, x, g, _pool_attrs(node))]


def _read_at_first_max(b, x, g, attrs):
    """For every pooling window, g at the position of the first (row-major) maximum of x."""
    (ph, pw), (sh, sw) = attrs["pool_size"], attrs["strides"]
    y = b.max_pool2d(x, **attrs)
    xp, gp = _pad_like_pool(b, x, attrs, float("-inf")), _pad_like_pool(b, g, attrs, 0.0)
    out_h, out_w = y.shape[1], y.shape[2]
    taken, picked = None, None
    for i in range(ph):
        for j in range(pw):
            window = dict(axes=[1, 2], starts=[i, j], ends=[i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1],
                          steps=[sh, sw])
            hit = b.equal(b.slice(xp, **window), y)
            if taken is not None:
                hit = b.logical_and(hit, b.logical_not(taken))
            value = b.where(hit, b.slice(gp, **window), b.constant(0.0, dtype=g.dtype))
            picked = value if picked is None else b.add(picked, value)
            taken = hit if taken is None else b.logical_or(taken, hit)
    return picked


def _pad_like_pool(b, x, attrs, value):
    """Pad the spatial axes as the pooling op does ('same': total // 2 before, the rest after)."""
    if attrs["padding"] == "valid":
        return x
    pads = [0, 0]
    for size, k, s in zip(x.shape[1:3], attrs["pool_size"], attrs["strides"]):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return b.pad(x, pads=pads + [0, 0], value=value)
