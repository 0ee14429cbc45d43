"""subpixel-conv-transpose: a strided conv2d_transpose as one stride-1 transposed conv whose output
channels hold the stride phases, then depth-to-space (reshape, transpose, reshape). A strided
conv2d's input gradient (conv2d_input_grad, in every training step of a strided conv) is the same
scatter and takes the same form.

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
from kcompile.ir.ops.nn import conv_geometry

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
    (rows, a_rows, j_rows), (cols, a_cols, j_cols) = plans
    (a_h, b_h, t_h), (a_w, b_w, t_w) = rows[cell[0]], cols[cell[1]]
    kh, kw, out, cin = w.type.shape
    if t_h == 0 or t_w == 0:   # a kernel shorter than the stride leaves some phases without taps
        zero = rw.new(m, "constant", value=np.zeros((), w.type.dtype.np))
        return rw.new(m, "broadcast_to", zero, shape=(j_rows, j_cols, out, cin))
    taps = rw.new(m, "slice", w, axes=[0, 1], starts=[b_h, b_w], ends=[kh, kw], steps=list(m.attrs["strides"]))
    front_h, front_w = a_rows - a_h, a_cols - a_w
    pads = [front_h, j_rows - front_h - t_h, front_w, j_cols - front_w - t_w, 0, 0, 0, 0]
    return rw.new(m, "pad", taps, pads=pads) if any(pads) else taps


def _rows(rw, m: Match, z, starts, ends):
    """z[:, starts:ends] on the two spatial axes, zero-extended where ends reach past z."""
    have = z.type.shape[1:3]
    if any(e > h for e, h in zip(ends, have)):
        z = rw.new(m, "pad", z, pads=[0, 0, 0, max(ends[0] - have[0], 0), 0, max(ends[1] - have[1], 0), 0, 0])
    if tuple(starts) == (0, 0) and tuple(ends) == tuple(z.type.shape[1:3]):
        return z
    return rw.new(m, "slice", z, axes=[1, 2], starts=list(starts), ends=list(ends))


def _depth_to_space(rw, m: Match, z, strides, out):
    """(N, Qh, Qw, sh*sw*out) with channels (r_h, r_w, o) -> (N, Qh*sh, Qw*sw, out)."""
    (n, qh, qw, _), (sh, sw) = z.type.shape, strides
    y = rw.new(m, "reshape", z, shape=(n, qh, qw, sh, sw, out))
    y = rw.new(m, "transpose", y, perm=(0, 1, 3, 2, 4, 5))
    return rw.new(m, "reshape", y, shape=(n, qh * sh, qw * sw, out))


def _phase_form(rw, m: Match, x, w, strides, geo):
    """The stride-1 phase-channel form of the strided scatter y[i*s + t - before] += x[i] @ w[t]^T,
    cropped to `size` rows per axis: geo = [(size, before)] per spatial axis."""
    plans = [_phases(k, s, before) for k, s, (_, before) in zip(w.type.shape[:2], strides, geo)]
    kernels = [_phase_kernel(rw, m, w, plans, (r, c)) for r in range(strides[0]) for c in range(strides[1])]
    z = rw.new(m, "conv2d_transpose", x, rw.new(m, "concat", *kernels, axis=2), strides=(1, 1), padding="valid")
    per_phase = [-(-size // s) for (size, _), s in zip(geo, strides)]
    z = _rows(rw, m, z, [p[1] for p in plans], [p[1] + q for p, q in zip(plans, per_phase)])
    y = _depth_to_space(rw, m, z, strides, w.type.shape[2])
    return _rows(rw, m, y, (0, 0), m.types[0].shape[1:3])


def _subpixel(rw, m: Match):
    a = m.attrs
    if tuple(a["strides"]) == (1, 1) or tuple(a["dilations"]) != (1, 1):
        return None
    x, w = m.inputs
    return _phase_form(rw, m, x, w, tuple(a["strides"]), transpose_geometries(x.type.shape, w.type.shape[:2], a))


def _input_grad(rw, m: Match):
    """conv2d's input gradient is the same scatter, with conv2d's kernel read as (kh, kw, out=cin,
    in=cout) and conv2d's padding before: the strided kernel would multiply every tap at every input
    row, most of them by the zeros between dy's strided rows (s*s times the work)."""
    a = m.attrs
    if tuple(a["strides"]) == (1, 1) or tuple(a["dilations"]) != (1, 1) or a["groups"] != 1 \
            or a["padding"] not in ("valid", "same"):
        return None
    dy, w = m.inputs
    shape = m.types[0].shape
    geo = [(size, conv_geometry(size, k, st, 1, a["padding"])[1])
           for size, k, st in zip(shape[1:3], w.type.shape[:2], a["strides"])]
    return _phase_form(rw, m, dy, w, tuple(a["strides"]), geo)


@register_pass("subpixel-conv-transpose")
def subpixel_conv_transpose(graph: Graph) -> Graph:
    """Strided conv2d_transpose and conv2d_input_grad as a stride-1 transposed conv over phase
    channels plus depth-to-space."""
    return dce(rewrite_graph(graph, [Rule(("conv2d_transpose",), _subpixel), Rule(("conv2d_input_grad",), _input_grad)]))
