"""The int8 GEMM kernels on each path, compiled for that path's CPU and run here: AVX-512 VNNI (when this
CPU has it), AVX2 (x86-64-v3 without AVX-512) and the portable one. Results are bit-identical to the
reference: odd M/N/K (K tails inside a k group, partial column panels), M on the direct path (1, 2)
and the packed one (several MC blocks), 2 threads, nonzero zero points, and the requantize epilogue
(i32 bias per column + per-column or scalar multiplier + relu, writing 8 bits)."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels import int8_gemm
from kcompile.compiler.kernels.int8_calls import int8_matmul_function
from kcompile.compiler.kernels.int8_microkernel import Requantize
from kcompile.compiler.kernels.standalone import JitModule, call, host_features
from kcompile.ir.ops.quant import _matmul_integer_ref, _requantize_ref

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

PATHS = {   # isa -> (cpu, features) it is compiled for
    "vnni": (None, None),
    "avx2": ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f,-avx512bw,-avx512vnni"),
    "generic": ("x86-64-v2", "+sse4.2,-avx,-avx2,-fma,-avx512f"),
}
# (a's dims after N, columns, a's dtype): K tails of 1-3 in a group, N below/above one panel
SHAPES = [((37,), 45, "u8"), ((3, 7), 1, "i8"), ((301,), 70, "i8"), ((5,), 300, "u8")]
EPILOGUES = [Requantize("u8", bias=True, per_col=True, relu=True), Requantize("i8", bias=False, per_col=False)]


def _runs_here(features):
    host = host_features().split(",")
    return features is None or all(f"+{f[1:]}" in host for f in features.split(",") if f.startswith("+"))


@pytest.fixture(scope="module")
def int8_calls_threaded():
    """Emitted inside this fixture, the int8 kernels split even tiny problems over the threads asked for."""
    saved, int8_gemm.GRAIN_OPS = int8_gemm.GRAIN_OPS, 1
    yield
    int8_gemm.GRAIN_OPS = saved


@pytest.fixture(scope="module", params=sorted(PATHS))
def path(request, every_call_threaded, int8_calls_threaded):
    cpu, feats = PATHS[request.param]
    need = feats if request.param != "vnni" else "+avx512f,+avx512bw,+avx512vnni"
    if not _runs_here(need):
        pytest.skip(f"this CPU cannot run the {request.param} path")
    mod, names = ir.Module(f"int8_{request.param}"), {}
    for i, (dims, n, a_dt) in enumerate(SHAPES):
        f = int8_matmul_function(mod, feats or host_features(), a_dt, ("N", *dims), (dims[-1], n), i % 2 == 0,
                                 isa=request.param)
        f.linkage = "external"
        names[i] = f.name
    for j, epi in enumerate(EPILOGUES):
        f = int8_matmul_function(mod, feats or host_features(), "i8", ("N", 29), (29, 37), True, out=epi,
                                 isa=request.param)
        f.linkage = "external"
        names["epi", j] = f.name
    return JitModule(mod, cpu=cpu, features=feats), names


def _ints(rng, shape, dt):
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max + 1, shape).astype(dt)


@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_matmul_integer_bit_exact(path, shape):
    jm, names = path
    dims, n, a_dt = SHAPES[shape]
    rng = np.random.default_rng(shape)
    dt = np.uint8 if a_dt == "u8" else np.int8
    for batch in (1, 2, 13, 150):
        a, w = _ints(rng, (batch, *dims), dt), _ints(rng, (dims[-1], n), np.int8)
        azp = _ints(rng, (), dt).reshape(1)
        bzp = _ints(rng, (n,) if shape % 2 == 0 else (1,), np.int8)
        c = np.full((batch, *dims[:-1], n), 12345, np.int32)
        call(jm, names[shape], [a, w, azp, bzp, c], batch, 2)
        want = _matmul_integer_ref([a, w, azp.reshape(()), bzp if shape % 2 == 0 else bzp.reshape(())], {}, batch)[0]
        np.testing.assert_array_equal(c, want, err_msg=f"batch {batch}")


@pytest.mark.parametrize("j", range(len(EPILOGUES)))
def test_requantize_epilogue_writes_the_requantized_bytes(path, j):
    jm, names = path
    epi, rng = EPILOGUES[j], np.random.default_rng(7 + j)
    out_dt = np.uint8 if epi.out_dtype == "u8" else np.int8
    for batch in (1, 6, 40):
        a, w = _ints(rng, (batch, 29), np.int8), _ints(rng, (29, 37), np.int8)
        azp, bzp = np.array([5], np.int8), _ints(rng, (37,), np.int8)
        bias = rng.integers(-20000, 20000, 37).astype(np.int32)
        mult = rng.uniform(1e-5, 4e-4, 37 if epi.per_col else 1).astype(np.float32)
        zp = _ints(rng, (1,), out_dt)
        y = np.zeros((batch, 37), out_dt)
        call(jm, names["epi", j], [a, w, azp, bzp, y] + ([bias] if epi.bias else []) + [mult, zp], batch, 2)
        acc = _matmul_integer_ref([a, w, azp.reshape(()), bzp], {}, batch)[0]
        acc = acc + bias if epi.bias else acc
        want = _requantize_ref([acc.astype(np.int32), mult if epi.per_col else mult.reshape(()), zp.reshape(())],
                               {"axis": -1, "relu": epi.relu}, batch)[0]
        np.testing.assert_array_equal(y, want, err_msg=f"batch {batch}")
