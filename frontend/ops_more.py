"""kc.ops names the attention-era layers use: stop_gradient, cumsum, top_k, tile, triu/tril, cond."""
from __future__ import annotations

import numpy as np

from .tensor import KTensor, apply, convert_to_tensor


def stop_gradient(variable):
    return apply("stop_gradient", variable)


def cumsum(x, axis=None, dtype=None):
    """Keras cumsum: axis None runs over the flattened tensor; bools count as int32."""
    from . import ops
    x = convert_to_tensor(x)
    if dtype is not None or x.dtype == "bool":
        x = ops.cast(x, dtype or "int32")
    if axis is None:
        x, axis = ops.reshape(x, (-1,)), 0
    return apply("cumsum", x, axis=int(axis))


def top_k(x, k, sorted=True):  # noqa: A002  (Keras's argument name)
    """The k largest along the last axis and their int32 indices; always sorted (valid for sorted=False)."""
    return tuple(apply("top_k", x, k=int(k)))


def tile(x, repeats):
    """NumPy/Keras tile as expand_dims + broadcast_to + reshape: differentiable and exportable as is."""
    from . import ops
    x = convert_to_tensor(x)
    reps = [int(repeats)] if np.ndim(repeats) == 0 else [int(r) for r in repeats]
    if len(reps) < x.ndim:
        reps = [1] * (x.ndim - len(reps)) + reps
    elif len(reps) > x.ndim:
        x = ops.reshape(x, (1,) * (len(reps) - x.ndim) + tuple(x.ir_shape))
    shape = x.ir_shape
    if isinstance(shape[0], str) and reps[0] != 1:
        raise ValueError(f"tile: repeating the batch dimension (repeats[0]={reps[0]}) is not static; "
                         f"got a tensor of shape {x.shape}")
    if all(r == 1 for r in reps):
        return x
    axes = [i + j for j, i in enumerate(i for i, r in enumerate(reps) if r != 1)]  # a new axis before each repeat
    spread = ops.expand_dims(x, axes) if len(axes) > 0 else x
    target, final = [], []
    for d, r in zip(shape, reps):
        if r != 1:
            target.append(r)
        target.append(d)
        final.append(d if r == 1 else d * r)
    return ops.reshape(ops.broadcast_to(spread, target), final)


def _triangle(x, k, upper: bool):
    from . import ops
    x = convert_to_tensor(x)
    if x.ndim < 2 or any(isinstance(d, str) for d in x.ir_shape[-2:]):
        raise ValueError(f"{'triu' if upper else 'tril'}: needs a tensor of rank >= 2 with static last two "
                         f"dimensions, got shape {x.shape}")
    m, n = x.ir_shape[-2:]
    keep = np.triu(np.ones((m, n), bool), k) if upper else np.tril(np.ones((m, n), bool), k)
    return ops.where(keep, x, ops.zeros((), x.dtype))


def triu(x, k=0):
    return _triangle(x, k, upper=True)


def tril(x, k=0):
    return _triangle(x, k, upper=False)


def cond(pred, true_fn, false_fn):
    """Keras cond on a static predicate (a Python/NumPy value or an eager tensor): the branch is chosen
    while tracing, so only that branch's ops enter the graph. A traced predicate has no static value."""
    if isinstance(pred, KTensor):
        if not pred.is_eager:
            raise ValueError("cond: the predicate is a traced tensor whose value is known only at run time; "
                             "kcompile compiles static graphs, so cond needs a static predicate (a Python bool "
                             "or an eager tensor). For an elementwise choice use kc.ops.where(pred, a, b)")
        pred = pred.numpy()
    if np.size(pred) != 1:
        raise ValueError(f"cond: the predicate must be a scalar, got shape {np.shape(pred)}")
    return true_fn() if bool(np.asarray(pred).reshape(())) else false_fn()


def swapaxes(x, axis1, axis2):
    from . import ops
    x = convert_to_tensor(x)
    perm = list(range(x.ndim))
    a, b = axis1 % x.ndim, axis2 % x.ndim
    perm[a], perm[b] = perm[b], perm[a]
    return ops.transpose(x, perm)


def moveaxis(x, source, destination):
    from . import ops
    x = convert_to_tensor(x)
    perm = [i for i in range(x.ndim) if i != source % x.ndim]
    perm.insert(destination % x.ndim, source % x.ndim)
    return ops.transpose(x, perm)


def dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False,
                          flash_attention=None, attn_logits_soft_cap=None):
    """Keras ops.dot_product_attention on [batch, length, heads, head_dim] tensors (masked logits
    set to -0.7 * float32 max, as JAX does, so a wholly masked row attends uniformly)."""
    from . import ops
    from .layers.attention import DOT_PRODUCT_MASK_VALUE
    if attn_logits_soft_cap is not None:
        raise NotImplementedError("dot_product_attention: attn_logits_soft_cap is not supported")
    query, key, value = convert_to_tensor(query), convert_to_tensor(key), convert_to_tensor(value)
    if query.ndim != 4 or key.ndim != 4 or value.ndim != 4:
        raise ValueError(f"dot_product_attention: query, key and value must be rank 4 [batch, length, heads, "
                         f"head_dim], got shapes {query.shape}, {key.shape}, {value.shape}")
    scale = 1.0 / float(np.sqrt(query.ir_shape[-1])) if scale is None else float(scale)
    logits = ops.multiply(ops.einsum("BTNH,BSNH->BNTS", query, key), scale)
    if bias is not None:
        logits = ops.add(logits, bias)
    keep = None if mask is None else ops.cast(mask, "bool")
    if is_causal:
        t, s = logits.ir_shape[-2:]
        causal = np.tril(np.ones((t, s), bool))
        keep = causal if keep is None else ops.logical_and(keep, causal)
    if keep is not None:
        logits = ops.where(keep, logits, DOT_PRODUCT_MASK_VALUE)
    return ops.einsum("BNTS,BSNH->BTNH", ops.softmax(logits, axis=-1), value)
