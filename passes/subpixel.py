"""subpixel-conv-transpose: a strided conv2d_transpose as one stride-1 transposed conv whose output
channels hold the stride phases, then depth-to-space (reshape, transpose, reshape).

Output row s*q + r only receives the taps t = s*j + b_r (b_r = (r + before) % s) from input row
q + a_r - j (a_r = (r + before) // s). Every phase's taps, shifted by A - a_r zeros in front
(A = max a_r), form a kernel of J = max(A - a_r + ceil((k - b_r) / s)) taps that reads input rows
q + A - j, so one "valid" stride-1 transposed conv computes every phase at rows A..A+Q. The strided
kernel multiplies all k taps at every output row, (s*s) times the work; this one about
(ceil(k/s)*s/k)^2. Dilated transposed convs (Keras forbids strides > 1 with them) are left alone.
"""
from __future__ import annotations

import numpy as np

from kcompile.ir import Graph
from kcompile.ir.ops.conv_transpose import transpose_geometries

from .canonicalize import dce
from .manager import register_pass
from .rewrite import Match, Rule, rewrite_graph


def _phases(k: int, s: int, before: int):
    """([(a_r, b_r, taps_r) per phase r], A, J) along one axis."""
    plan = [(*divmod(r + before, s), -(-(k - (r + before) % s) // s)) for r in range(s)]
    a_max = max(a for a, _, _ in plan)
    return plan, a_max, max(a_max - a + taps for a, _, taps in plan)


def _phase_kernel(rw, m: Match, w, plans, cell):
    """The taps of phase `cell` = (r_h, r_w), zero-padded in front and behind to (J_h, J_w)."""
    (ph, ah, jh), (pw, aw, jw) = plans
    (a_h, b_h, t_h), (a_w, b_w, t_w) = ph[cell[0]], pw[cell[1]]
    kh, kw, out, cin = w.type.shape
    if t_h == 0 or t_w == 0:   # a kernel shorter than the stride leaves some phases without taps
        zero = rw.new(m, "constant", value=np.zeros((), w.type.dtype.np))
        return rw.new(m, "broadcast_to", zero, shape=(jh, jw, out, cin))
    taps = rw.new(m, "slice", w, axes=[0, 1], starts=[b_h, b_w], ends=[kh, kw], steps=list(m.attrs["strides"]))
    front_h, front_w = ah - a_h, aw - a_w
    pads = [front_h, jh - front_h - t_h, front_w, jw - front_w - t_w, 0, 0, 0, 0]
    return rw.new(m, "pad", taps, pads=pads) if any(pads) else taps


def _subpixel(rw, m: Match):
    a = m.attrs
    if tuple(a["strides"]) == (1, 1) or tuple(a["dilations"]) != (1, 1):
        return None
    x, w = m.inputs
    (sh, sw), out = a["strides"], w.type.shape[2]
    geo = transpose_geometries(x.type.shape, w.type.shape[:2], a)
    plans = [_phases(k, s, before) for k, s, (_, before) in zip(w.type.shape[:2], (sh, sw), geo)]
    kernels = [_phase_kernel(rw, m, w, plans, (rh, rw_)) for rh in range(sh) for rw_ in range(sw)]
    z = rw.new(m, "conv2d_transpose", x, rw.new(m, "concat", *kernels, axis=2), strides=(1, 1), padding="valid")
    q = [-(-size // s) for (size, _), s in zip(geo, (sh, sw))]
    have = z.type.shape[1:3]
    need = [p[1] + n for p, n in zip(plans, q)]
    if any(n > h for n, h in zip(need, have)):
        z = rw.new(m, "pad", z, pads=[0, 0, 0, max(need[0] - have[0], 0), 0, max(need[1] - have[1], 0), 0, 0])
    z = rw.new(m, "slice", z, axes=[1, 2], starts=[plans[0][1], plans[1][1]], ends=need)
    n = x.type.shape[0]
    y = rw.new(m, "reshape", z, shape=(n, q[0], q[1], sh, sw, out))
    y = rw.new(m, "transpose", y, perm=(0, 1, 3, 2, 4, 5))
    y = rw.new(m, "reshape", y, shape=(n, q[0] * sh, q[1] * sw, out))
    size = m.types[0].shape[1:3]
    return rw.new(m, "slice", y, axes=[1, 2], starts=[0, 0], ends=list(size)) if tuple(y.type.shape[1:3]) != tuple(size) else y


@register_pass("subpixel-conv-transpose")
def subpixel_conv_transpose(graph: Graph) -> Graph:
    """Strided conv2d_transpose as a stride-1 one over phase channels plus depth-to-space."""
    return dce(rewrite_graph(graph, [Rule(("conv2d_transpose",), _subpixel)]))
