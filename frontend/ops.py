"""kc.ops: traceable tensor functions with the Keras 3 `keras.ops` names, each through tensor.apply."""
from __future__ import annotations

import math

import numpy as np

from kcompile.ir import OPS, dtype as to_dtype

from .tensor import KTensor, apply, cast_if_int, convert_to_tensor  # noqa: F401
from .tensor import true_divide as _true_divide


def _t(x):
    return convert_to_tensor(x)


def _axes(axis, rank):
    if axis is None:
        return ()
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % rank for a in axes)


# -- arithmetic ------------------------------------------------------------------------------
def add(x1, x2): return apply("add", x1, x2)
def subtract(x1, x2): return apply("sub", x1, x2)
def multiply(x1, x2): return apply("mul", x1, x2)
def divide(x1, x2): return _true_divide(x1, x2)
def true_divide(x1, x2): return _true_divide(x1, x2)
def power(x1, x2): return apply("pow", cast_if_int(_t(x1)), x2)
def negative(x): return apply("neg", x)
def maximum(x1, x2): return apply("maximum", x1, x2)
def minimum(x1, x2): return apply("minimum", x1, x2)
def floor_divide(x1, x2): return floor(divide(x1, x2))


def matmul(x1, x2): return apply("matmul", x1, x2)


def dot(x1, x2):
    """Keras dot: matmul for rank >= 2 operands; vector cases via reshapes."""
    a, b = _t(x1), _t(x2)
    if a.ndim >= 2 and b.ndim >= 2:
        return matmul(a, b)
    if a.ndim == 1 and b.ndim == 1:
        return sum(multiply(a, b))
    if b.ndim == 1:
        return squeeze(matmul(a, expand_dims(b, -1)), -1)
    return squeeze(matmul(expand_dims(a, 0), b), 0)


# -- unary math ------------------------------------------------------------------------------
def _unary(op):
    def fn(x):
        return apply(op, x if OPS[op].has("integer") else cast_if_int(_t(x)))
    fn.__name__ = op
    return fn


exp, log, sqrt, rsqrt, tanh, sigmoid = (_unary(n) for n in ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid"))
sin, cos, log1p, expm1, erf = (_unary(n) for n in ("sin", "cos", "log1p", "expm1", "erf"))
floor, ceil, round, reciprocal = (_unary(n) for n in ("floor", "ceil", "round", "reciprocal"))  # noqa: A001
abs, absolute, square, sign = _unary("abs"), _unary("abs"), _unary("square"), _unary("sign")  # noqa: A001
softplus = _unary("softplus")


def relu(x): return apply("relu", x)
def relu6(x): return minimum(relu(x), 6.0)
def silu(x): return multiply(x, sigmoid(x))


swish = silu


def leaky_relu(x, negative_slope=0.2):
    return where(greater_equal(x, 0.0), x, multiply(x, negative_slope))


def elu(x, alpha=1.0):
    return where(greater(x, 0.0), x, multiply(expm1(x), alpha))


def selu(x):
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return multiply(elu(x, alpha), scale)


def gelu(x, approximate=True):
    """Keras ops.gelu (approximate=True by default here, as keras.ops; the activation uses False)."""
    if approximate:
        inner = multiply(add(x, multiply(power(x, 3.0), 0.044715)), math.sqrt(2 / math.pi))
        return multiply(multiply(x, 0.5), add(tanh(inner), 1.0))
    return multiply(multiply(x, 0.5), add(erf(divide(x, math.sqrt(2.0))), 1.0))


def hard_sigmoid(x):
    return divide(relu6(add(x, 3.0)), 6.0)


def hard_silu(x):
    return multiply(x, hard_sigmoid(x))


def softmax(x, axis=-1): return apply("softmax", x, axis=axis)
def log_softmax(x, axis=-1): return apply("log_softmax", x, axis=axis)


def clip(x, x_min, x_max):
    return minimum(maximum(x, x_min), x_max)


# -- comparisons and logic -------------------------------------------------------------------
def equal(x1, x2): return apply("equal", x1, x2)
def not_equal(x1, x2): return apply("not_equal", x1, x2)
def less(x1, x2): return apply("less", x1, x2)
def less_equal(x1, x2): return apply("less_equal", x1, x2)
def greater(x1, x2): return apply("greater", x1, x2)
def greater_equal(x1, x2): return apply("greater_equal", x1, x2)
def logical_and(x1, x2): return apply("logical_and", x1, x2)
def logical_or(x1, x2): return apply("logical_or", x1, x2)
def logical_not(x): return apply("logical_not", x)


def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        raise ValueError("where(condition) without x1 and x2 (the indices of the nonzero entries) has a "
                         "data-dependent shape, which a static graph cannot hold; pass both x1 and x2")
    cond = _t(condition)
    if cond.dtype != "bool":
        cond = not_equal(cond, 0)
    return apply("where", cond, x1, x2)


# -- reductions ------------------------------------------------------------------------------
def _reduce(op):
    def fn(x, axis=None, keepdims=False):
        x = _t(x)
        return apply(op, x, axes=_axes(axis, x.ndim), keepdims=keepdims)
    fn.__name__ = op
    return fn


sum, mean, max, min, prod = (_reduce(n) for n in  # noqa: A001
                             ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"))
amax, amin = max, min


def var(x, axis=None, keepdims=False):
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def moments(x, axes, keepdims=False):
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


def logsumexp(x, axis=None, keepdims=False):
    m = max(x, axis=axis, keepdims=True)
    out = add(log(sum(exp(subtract(x, m)), axis=axis, keepdims=True)), m)
    return out if keepdims else squeeze(out, axis) if axis is not None else reshape(out, ())


def _arg(op):
    def fn(x, axis=None, keepdims=False):
        x = _t(x)
        if axis is None:   # over the flattened tensor; keepdims gives all-ones dims as NumPy does
            flat = apply(op, reshape(x, (-1,)), axis=0, keepdims=False)
            return reshape(flat, (1,) * x.ndim) if keepdims else flat
        return apply(op, x, axis=axis, keepdims=keepdims)
    fn.__name__ = op
    return fn


argmax, argmin = _arg("argmax"), _arg("argmin")


# -- shapes ----------------------------------------------------------------------------------
def shape(x):
    return _t(x).shape


def reshape(x, newshape):
    """Keras reshape; a leading -1 (or None) on a batched tensor keeps the batch symbol."""
    x = _t(x)
    newshape = [newshape] if isinstance(newshape, int) else [(-1 if d is None else d) for d in newshape]
    src = x.ir_shape
    if src and isinstance(src[0], str):
        if newshape and newshape[0] in (-1, src[0]) and -1 not in newshape[1:]:
            newshape[0] = src[0]
        elif newshape and newshape[0] != src[0]:
            raise ValueError(f"reshape of a batched tensor {x.shape} to {tuple(newshape)}: the leading "
                             "(batch) dimension must stay -1/None")
    return apply("reshape", x, shape=tuple(newshape))


def transpose(x, axes=None):
    x = _t(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    return apply("transpose", x, perm=perm)


def expand_dims(x, axis):
    x = _t(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = x.ndim + len(axes)
    return apply("expand_dims", x, axes=tuple(a % rank for a in axes))


def squeeze(x, axis=None):
    x = _t(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.ir_shape) if d == 1)
    else:
        axes = _axes(axis, x.ndim)
    return apply("squeeze", x, axes=axes)


def concatenate(xs, axis=0):
    return apply("concat", *xs, axis=axis)


def stack(xs, axis=0):
    xs = [_t(x) for x in xs]
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(x, indices_or_sections, axis=0):
    x = _t(x)
    size = x.ir_shape[axis]
    if isinstance(indices_or_sections, int):
        if size % indices_or_sections:
            raise ValueError(f"split: axis {axis} of size {size} is not divisible by {indices_or_sections}")
        sections = (size // indices_or_sections,) * indices_or_sections
    else:
        bounds = [0, *indices_or_sections, size]
        sections = tuple(b - a for a, b in zip(bounds, bounds[1:]))
    return list(apply("split", x, axis=axis, sections=sections)) if len(sections) > 1 else [x]


def broadcast_to(x, shape):
    return apply("broadcast_to", x, shape=tuple(shape))


def pad(x, pad_width, mode="constant", constant_values=0):
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    flat = tuple(int(v) for pair in pad_width for v in pair)
    return apply("pad", x, pads=flat, value=float(constant_values))


def cast(x, dtype):
    return apply("cast", _t(x), dtype=dtype)


def take(x, indices, axis=None):
    x, indices = _t(x), _t(indices)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    if indices.ir_type.dtype.is_float:
        indices = cast(indices, "int32")
    return apply("gather", x, indices, axis=axis)


def one_hot(x, num_classes, axis=-1, dtype=None):
    x = _t(x)
    if x.ir_type.dtype.is_float:
        x = cast(x, "int32")
    out = apply("one_hot", x, depth=int(num_classes), dtype=dtype or "float32")
    if axis not in (-1, x.ndim):
        perm = list(range(x.ndim))
        perm.insert(axis % (x.ndim + 1), x.ndim)
        out = transpose(out, perm)
    return out


# -- creation --------------------------------------------------------------------------------
def zeros(shape, dtype="float32"):
    return convert_to_tensor(np.zeros(tuple(shape), to_dtype(dtype).np))


def ones(shape, dtype="float32"):
    return convert_to_tensor(np.ones(tuple(shape), to_dtype(dtype).np))


def full(shape, fill_value, dtype="float32"):
    return convert_to_tensor(np.full(tuple(shape), fill_value, to_dtype(dtype).np))


def eye(n, m=None, dtype="float32"):
    return convert_to_tensor(np.eye(n, m, dtype=to_dtype(dtype).np))


def arange(start, stop=None, step=1, dtype=None):
    """Keras infers the dtype: int32 when start, stop and step are ints, else float32 (never truncating 0.25)."""
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step) if v is not None)
        dtype = "int32" if ints else "float32"
    return convert_to_tensor(np.arange(start, stop, step, dtype=to_dtype(dtype).np))


def zeros_like(x, dtype=None):
    x = _t(x)
    return multiply(cast(x, dtype) if dtype else x, 0) if not x.is_eager else zeros(x.shape, dtype or x.dtype)


def ones_like(x, dtype=None):
    x = _t(x)
    return add(zeros_like(x, dtype), 1) if not x.is_eager else ones(x.shape, dtype or x.dtype)


# -- neural-network helpers ------------------------------------------------------------------
def _pair(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


def _channels_last(x, data_format, what):
    """x as channels_last, and the function that brings a result back to data_format (Keras's ops take
    channels_first by a transpose at the boundary, as the layers do)."""
    from .layers.data_format import from_channels_last, standardize_data_format, to_channels_last
    fmt = standardize_data_format(data_format, f"kc.ops.{what}")
    return to_channels_last(x, fmt), lambda y: from_channels_last(y, fmt)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Keras's ops.conv: 1-3 spatial axes, channels_last or channels_first, kernel (k..., in/groups, out)."""
    from .layers.volumetric import conv3d
    x, w = _t(inputs), _t(kernel)
    x, back = _channels_last(x, data_format, "conv")
    nsp = x.ndim - 2
    if nsp not in (1, 2, 3) or w.ndim != nsp + 2:
        raise ValueError(f"kc.ops.conv: inputs need 1 to 3 spatial axes and a kernel of rank inputs' rank, got "
                         f"inputs {x.shape} and kernel {w.shape}")
    if x.ir_shape[-1] % w.ir_shape[-2]:
        raise ValueError(f"kc.ops.conv: input channels {x.ir_shape[-1]} must be a multiple of the kernel's "
                         f"{w.ir_shape[-2]} (channels per group), inputs {x.shape}, kernel {w.shape}")
    groups = x.ir_shape[-1] // w.ir_shape[-2]
    strides, dilations = _pair(strides, nsp), _pair(dilation_rate, nsp)
    if nsp == 1:
        y = apply("conv1d", x, w, strides=strides[0], padding=padding, dilations=dilations[0], groups=groups)
    elif nsp == 2:
        y = apply("conv2d", x, w, strides=strides, padding=padding, dilations=dilations, groups=groups)
    else:
        y = conv3d(x, w, strides, padding, dilations, groups)
    return back(y)


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """Keras's ops.conv_transpose: 1-3 spatial axes, channels_last or channels_first, kernel (k..., out, in)."""
    from .layers.volumetric import conv3d_transpose
    x, w = _t(inputs), _t(kernel)
    x, back = _channels_last(x, data_format, "conv_transpose")
    nsp = x.ndim - 2
    if nsp not in (1, 2, 3):
        raise ValueError(f"kc.ops.conv_transpose: inputs must have 1 to 3 spatial axes, got shape {x.shape}")
    strides, dilations = _pair(strides, nsp), _pair(dilation_rate, nsp)
    out_pad = () if output_padding is None else _pair(output_padding, nsp)
    if nsp == 3:
        return back(conv3d_transpose(x, w, strides, padding, dilations, out_pad or None))
    if nsp == 1:   # (N, W, C) as (N, 1, W, C)
        x, w = expand_dims(x, 1), expand_dims(w, 0)
        strides, dilations, out_pad = (1, *strides), (1, *dilations), (0, *out_pad) if out_pad else ()
    y = apply("conv2d_transpose", x, w, strides=strides, padding=padding, dilations=dilations,
              output_padding=out_pad)
    return back(squeeze(y, 1) if nsp == 1 else y)


def _pool(op_prefix, what):
    def fn(inputs, pool_size, strides=None, padding="valid", data_format=None):
        from .layers.volumetric import pool3d
        x, back = _channels_last(_t(inputs), data_format, what)
        nsp = x.ndim - 2
        if nsp not in (1, 2, 3):
            raise ValueError(f"kc.ops.{what}: inputs must have 1 to 3 spatial axes, got shape {x.shape}")
        size = _pair(pool_size, nsp)
        strides = _pair(strides, nsp) if strides else size
        if nsp == 3:
            return back(pool3d(op_prefix.split("_")[0], x, size, strides, padding))
        return back(apply(f"{op_prefix}{nsp}d", x, pool_size=size, strides=strides, padding=padding))
    return fn


max_pool, average_pool = _pool("max_pool", "max_pool"), _pool("avg_pool", "average_pool")


# -- attention-era ops (Keras 3 names) ---------------------------------------------------------
from .einsum import einsum  # noqa: E402,F401
from .ops_more import (cond, cumsum, dot_product_attention, moveaxis, stop_gradient, swapaxes, tile,  # noqa: E402,F401
                       top_k, tril, triu)
from . import ops_image as image  # noqa: E402  (kc.ops.image.resize, kc.ops.image.affine_transform)
