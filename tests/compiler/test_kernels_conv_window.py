"""Unpadded convolutions whose micro-kernels read the windows in place (window_tile.py) vs the reference,
on the host's vector width and on forced AVX2 / SSE targets."""
import numpy as np
import pytest
from llvmlite import ir

from kcompile.compiler.kernels.config import gemm_shape
from kcompile.compiler.kernels.conv import conv_function
from kcompile.compiler.kernels.epilogue import BiasActivation
from kcompile.compiler.kernels.geometry import geometry2d
from kcompile.compiler.kernels.standalone import JitModule, call, host_features
from kcompile.compiler.kernels.window_tile import use_window
from kcompile.ir.ops.nn import conv2d_ref

from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

TOL = 2e-5
# (x shape (H, W, Cin), kernel (kh, kw), cout, strides, dilations)
CASES = [
    ((13, 13, 32), (3, 3), 64, (1, 1), (1, 1)),    # the MNIST convnet's second conv: K = 288, one KC block
    ((5, 5, 64), (3, 3), 128, (1, 1), (1, 1)),     # its third: K = 576 > KC, still one block
    ((7, 9, 48), (3, 3), 40, (1, 2), (1, 1)),      # strided, partial column panel
    ((8, 6, 20), (2, 3), 33, (2, 1), (2, 1)),      # dilated rows, K = 120, 33 columns
    ((4, 10, 24), (1, 3), 32, (1, 1), (1, 1)),     # one kernel row: every C prefetch group at k = 0
]
TARGETS = {
    "host": (None, None),
    "avx2": ("x86-64-v3", "+avx,+avx2,+fma,+f16c,-avx512f"),
    "sse": ("x86-64-v2", "+sse4.2,-avx,-avx2,-fma,-avx512f"),
}


def _geo(case):
    hwc, k, cout, s, d = case
    return geometry2d(("N", *hwc), k, s, d, "valid", 1, cout)


def _supported(features):
    host = host_features().split(",")
    return features is None or all(f"+{f[1:]}" in host for f in features.split(",") if f.startswith("+"))


@pytest.fixture(scope="module", params=sorted(TARGETS))
def target(request, every_call_threaded):
    cpu, feats = TARGETS[request.param]
    if not _supported(feats):
        pytest.skip(f"this CPU cannot run {request.param} code")
    feats_used = feats or host_features()
    mod = ir.Module(f"conv_window_{request.param}")
    names = {}
    for i, case in enumerate(CASES):
        for epi in ("plain", "biasrelu"):
            fn = conv_function(mod, feats_used, "f32", "forward", _geo(case),
                               BiasActivation(True, "relu") if epi == "biasrelu" else None)
            fn.linkage = "external"
            names[i, epi] = fn.name
    fn = conv_function(mod, feats_used, "f64", "forward", _geo(CASES[2]))
    fn.linkage = "external"
    names["f64"] = fn.name
    # the window micro-kernels are what these GEMMs call (not the packed ones)
    assert any(name.endswith("_win") for name in mod.globals)
    return JitModule(mod, cpu=cpu, features=feats), names


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("batch,nthreads", [(1, 1), (3, 2), (20, 2), (0, 2)])
def test_window_conv_forward(target, i, batch, nthreads):
    jm, names = target
    hwc, k, cout, s, d = CASES[i]
    rng = np.random.default_rng(i)
    x = rng.standard_normal((batch, *hwc)).astype(np.float32)
    w = rng.standard_normal((*k, hwc[2], cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    ref = conv2d_ref(x, w, {"strides": s, "dilations": d, "padding": "valid", "groups": 1})
    y = np.full(ref.shape, np.nan, np.float32)
    call(jm, names[i, "plain"], [x, w, y], batch, nthreads)
    np.testing.assert_allclose(y, ref, rtol=TOL, atol=TOL * 10)
    y = np.full(ref.shape, np.nan, np.float32)
    call(jm, names[i, "biasrelu"], [x, w, y, bias], batch, nthreads)
    np.testing.assert_allclose(y, np.maximum(ref + bias, 0), rtol=TOL, atol=TOL * 10)


def test_window_conv_f64(target):
    jm, names = target
    hwc, k, cout, s, d = CASES[2]
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((5, *hwc)), rng.standard_normal((*k, hwc[2], cout))
    ref = conv2d_ref(x, w, {"strides": s, "dilations": d, "padding": "valid", "groups": 1})
    y = np.full(ref.shape, np.nan)
    call(jm, names["f64"], [x, w, y], 5, 2)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("padding,strides,dilations,groups,used", [
    ("valid", (1, 1), (1, 1), 1, True),
    ("same", (1, 1), (1, 1), 1, False),     # padded windows need zeros: packed path
    ("valid", (1, 1), (1, 2), 1, False),    # dilated columns: (kw, ci) is not one contiguous run
    ("valid", (1, 1), (1, 1), 2, False),    # grouped
])
def test_window_path_selection(padding, strides, dilations, groups, used):
    geo = geometry2d(("N", 9, 9, 16), (3, 3), strides, dilations, padding, groups, 32)
    assert use_window(geo, gemm_shape(host_features(), 4, 32), True) is used
    assert not use_window(geo, gemm_shape(host_features(), 4, 32), False)   # integer GEMMs keep theirs


def test_window_kernel_prefetches_each_c_line_once():
    """The 12-row kernel asks for each of its C lines once, spread over the kernel rows (a 3x3
    convolution's C_PREFETCH_GROUPS groups), and for the newest input row's lines in a loop."""
    mod = ir.Module("conv_window_prefetch")
    conv_function(mod, host_features(), "f32", "forward", _geo(CASES[0]), BiasActivation(True, "relu"))
    shape = gemm_shape(host_features(), 4, CASES[0][2])
    kernel = next(str(f) for f in mod.functions
                  if f.name.endswith("_win") and f"_{shape.mr}x{shape.nr}_full" in f.name and f.blocks)
    calls = [line for line in kernel.splitlines() if "llvm.prefetch" in line]
    writes = [line for line in calls if line.endswith("i32 1, i32 3, i32 1)")]
    reads = [line for line in calls if line.endswith("i32 0, i32 3, i32 1)")]
    assert len(writes) == shape.mr * (shape.nr // shape.lanes)
    assert len(reads) == 1   # one loop over the lines
