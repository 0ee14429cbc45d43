"""The register-tile transpose (kernels/transpose_tile.py): every element lands once, nothing outside the
[rows x cols] block is read or written, at odd sizes and strides, with 16 lanes (AVX-512) and 8 (AVX2)."""
import ctypes

import numpy as np
import pytest

from llvmlite import ir

from kcompile.compiler.kernels.standalone import JitModule
from kcompile.compiler.kernels.transpose_tile import shuffle_masks, transpose_function
from kcompile.compiler.target import host_target

CPUS = {16: (None, None), 8: ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f")}


@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_shuffle_rounds_transpose(lanes):
    rows = [np.arange(r * lanes, (r + 1) * lanes) for r in range(lanes)]
    for w, low, high in shuffle_masks(lanes):
        out = list(rows)
        for r in range(lanes):
            if r % (2 * w) < w:
                both = np.concatenate([rows[r], rows[r + w]])
                out[r], out[r + w] = both[low], both[high]
        rows = out
    np.testing.assert_array_equal(np.array(rows), np.arange(lanes * lanes).reshape(lanes, lanes).T)


@pytest.mark.parametrize("lanes", sorted(CPUS))
def test_native_transpose_of_strided_blocks(lanes):
    if lanes == 16 and not host_target().has("avx512f"):
        pytest.skip("this CPU has no AVX-512")
    mod = ir.Module("tr")
    fn = transpose_function(mod, lanes)
    fn.linkage = "external"
    cpu, features = CPUS[lanes]
    jit = JitModule(mod, cpu=cpu, features=features)
    f = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 2, *[ctypes.c_int64] * 4)(jit.address(fn.name))
    rng = np.random.default_rng(lanes)
    for rows, cols in [(1, 1), (lanes, lanes), (37, 5), (3, 40), (2 * lanes + 1, lanes - 1), (128, 64)]:
        src = rng.standard_normal((rows + 2, cols + 7)).astype(np.float32)   # ld_src = cols + 7
        dst = np.full((cols + 1, rows + 3), -7.0, np.float32)                  # ld_dst = rows + 3
        f(dst.ctypes.data, src.ctypes.data, rows + 3, cols + 7, rows, cols)
        want = np.full_like(dst, -7.0)
        want[:cols, :rows] = src[:rows, :cols].T
        np.testing.assert_array_equal(dst, want, err_msg=f"{rows} x {cols}")
