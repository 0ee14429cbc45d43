"""mathfns.exp_nonpositive (the fused attention's softmax exp) against NumPy's exp over x <= 0: relative
error within a few ulp where exp(x) is normal, exactly 0 below -87 and at -inf, NaN in -> NaN out,
with 16 lanes (AVX-512) and 8 (AVX2)."""
import ctypes

import numpy as np
import pytest

from llvmlite import ir

from kcompile.compiler.kernels.standalone import JitModule
from kcompile.compiler.lower import mathfns
from kcompile.compiler.loops import F32, I64, for_range, gep, load_vec, store_vec
from kcompile.compiler.target import host_target

CPUS = {16: (None, None), 8: ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f")}


def exp_kernel(lanes):
    """`void f(f32* x, f32* y, i64 n)`: y = exp_nonpositive(x), n a multiple of lanes."""
    mod = ir.Module("expnp")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [F32.as_pointer()] * 2 + [I64]), name="exp_np")
    x, y, n = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    with for_range(b, 0, n, lanes) as i:
        store_vec(b, mathfns.exp_nonpositive(b, load_vec(b, gep(b, x, i), lanes)), gep(b, y, i))
    b.ret_void()
    return mod


@pytest.mark.parametrize("lanes", sorted(CPUS))
def test_exp_nonpositive_matches_numpy(lanes):
    if lanes == 16 and not host_target().has("avx512f"):
        pytest.skip("this CPU has no AVX-512")
    cpu, features = CPUS[lanes]
    jit = JitModule(exp_kernel(lanes), cpu=cpu, features=features)
    f = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)(jit.address("exp_np"))
    x = np.concatenate([-np.geomspace(1e-8, 87, 4000), np.linspace(-87, 0, 4000), [0.0, -0.0, -1e-30],
                        [-87.5, -100.0, -1e4, -np.inf, np.nan]]).astype(np.float32)
    x = np.concatenate([x, np.zeros(-len(x) % lanes, np.float32)])
    y = np.empty_like(x)
    f(x.ctypes.data, y.ctypes.data, len(x))
    normal = x >= -87.0
    np.testing.assert_allclose(y[normal], np.exp(x[normal].astype(np.float64)), rtol=4e-7, atol=0)
    assert (y[(x < -87.0)] == 0).all()
    assert np.isnan(y[np.isnan(x)]).all()
