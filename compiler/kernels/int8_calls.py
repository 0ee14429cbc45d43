"""IR call sites -> int8 GEMM problems: matmul_integer (batch folded into M) and conv2d_integer
(implicit im2col rows, one GEMM per group); the ISA comes from the target's features."""
from __future__ import annotations

import hashlib
import math
from dataclasses import replace

from llvmlite import ir

from .geometry import Geometry
from .int8_gemm import Int8Gemm, int8_gemm_function
from .int8_isa import ISAS, int8_isa
from .int8_microkernel import StoreI32
from .int8_pack import MatrixRows, WindowRows, conv_rows_per_image
from .int8_window import WindowWords


def _name(kind: str, key) -> str:
    return f"kc_{kind}_" + hashlib.sha1(repr(key).encode()).hexdigest()[:12]


def _isa(features: str, isa: str | None):
    return ISAS[isa] if isa else int8_isa(features)


def tile_for(features: str, n: int, isa: str | None = None):
    """The int8 tile a GEMM of n columns per group uses (its group and NR decide a packed B's layout)."""
    return _isa(features, isa).for_columns(n)


def int8_matmul_function(module: ir.Module, features: str, a_dtype: str, a_shape, b_shape,
                         bz_per_col: bool, out=None, isa: str | None = None, prepacked: bool = False,
                         bz_zero: bool = False) -> ir.Function:
    """`void f(a, b, a_zp, b_zp, c, out ptrs..., [packed b,] i64 batch, i64 nthreads)` for a [..., K] @ b [K, N].

    out: StoreI32() (i32 results) or a Requantize epilogue (8-bit results); isa forces a path
    ("vnni", "avx2", "generic") instead of the best one the features allow; prepacked: B also comes
    packed for tile_for(features, N) (passes/int8_prepack.py); bz_zero: b_zp is known to be all zeros
    (symmetric weights: no row sums of A)."""
    out, k, n = out or StoreI32(), *b_shape
    chosen = tile_for(features, n, isa)
    rows = a_shape[:-1]
    key = (a_dtype, tuple(a_shape), tuple(b_shape), bz_per_col, out.ident, chosen.name, prepacked, bz_zero)
    prob = Int8Gemm(_name("i8mm", key), chosen, MatrixRows(k, a_dtype == "i8"),
                    math.prod(d for d in rows if isinstance(d, int)), isinstance(rows[0], str), n, n,
                    bz_per_col=bz_per_col, out=out, prepacked=prepacked, bz_zero=bz_zero)
    return int8_gemm_function(module, prob)


def int8_conv_function(module: ir.Module, features: str, x_dtype: str, geo: Geometry, batch_dim,
                       bz_per_col: bool, out=None, isa: str | None = None, prepacked: bool = False,
                       window: bool = False, bz_zero: bool = False) -> ir.Function:
    """`void f(x, w, x_zp, w_zp, y, out ptrs..., [packed w,] i64 batch, i64 nthreads)`: NHWC x, HWIO w;
    batch_dim is x's leading dimension ("N": the run-time batch size, or a static count). window: the
    packed w is in the window-row layout (passes/int8_window.py), whose A rows int8_window.py packs.
    out with a pool (Requantize.pool = k): y is the k x k, stride k 'valid' max pool of the result."""
    out, chosen = out or StoreI32(), tile_for(features, geo.cout_g, isa)
    pool, kk = getattr(out, "pool", 0), getattr(out, "window_rows", 1)
    if pool and (geo.oh < pool or geo.ow < pool):
        raise ValueError(f"int8 convolution: a fused {pool}x{pool} max pool needs an output of at least "
                         f"{pool}x{pool} pixels, got {geo.oh}x{geo.ow}")
    if kk > 1:   # tiles of whole pool windows (B's layout depends on group and the panel width only)
        chosen = chosen.pooled(kk)
    if window and not prepacked:
        raise ValueError("int8 convolution: the window-row layout needs the weight prepacked in it")
    key = (x_dtype, geo, batch_dim, bz_per_col, out.ident, chosen.name, prepacked, window, bz_zero)
    batched = isinstance(batch_dim, str)
    rows = conv_rows_per_image(geo, pool) * (1 if batched else batch_dim)
    source = (WindowWords(geo, x_dtype == "i8", chosen.group, pool) if window
              else WindowRows(geo, x_dtype == "i8", pool))
    prob = Int8Gemm(_name("i8conv", key), chosen, source, rows, batched,
                    geo.cout_g, geo.cout, groups=geo.groups, bz_per_col=bz_per_col, out=out, prepacked=prepacked,
                    bz_zero=bz_zero)
    return int8_gemm_function(module, prob)
