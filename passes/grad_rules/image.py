"""VJP of resize: the op is y = Wh · x · Wwᵀ per channel (static matrices), so dx = Whᵀ · dy · Ww,
emitted as two matmuls against constants. affine_transform is declared non-differentiable."""
from __future__ import annotations

from kcompile.ir.ops.image import resize_weights

from . import defvjp


@defvjp("resize")
def _resize(b, node, g):
    x = node.inputs[0]
    (_, h, w, _), (oh, ow), interp = x.shape, node.attrs["size"], node.attrs["interpolation"]
    dt = x.type.dtype
    wh = b.constant(resize_weights(h, oh, interp).astype(dt.np), dtype=dt)   # (oh, h)
    ww = b.constant(resize_weights(w, ow, interp).astype(dt.np), dtype=dt)   # (ow, w)
    t = b.matmul(b.transpose(g, perm=(0, 3, 1, 2)), ww)                      # (N, C, oh, w)
    t = b.matmul(t, wh, transpose_a=True)                                    # (N, C, w, h)
    return [b.transpose(t, perm=(0, 3, 2, 1))]
