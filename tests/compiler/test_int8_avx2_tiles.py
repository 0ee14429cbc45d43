"""The AVX2 int8 GEMM's layout and tiles (compiler/kernels/int8_isa.py): packed B panels hold int16 values
(prepack-int8 elem=2, names ending in "s16"; per-call packing widens too), and a convolution with a fused
max pool runs vector-wide strips of the 16-column panels, three 2x2 windows tall. Bit-exact against the
reference on the forced AVX2 path (and on the host's and the portable paths, which keep their tiles):
weights packed once (parameters) and per call (graph inputs), column counts that end inside a strip
(12, 20, 33), 2x2 and 3x3 pools, batches that leave partial tiles."""
import numpy as np
import pytest

from kcompile.compiler.driver import graph_pipeline
from kcompile.compiler.kernels.int8_isa import AVX2, VNNI, int8_isa
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes import PassManager

from native_util import assert_native_matches, runnable_target

AVX2_TARGET = host_target().without("avx512f")
TARGETS = {"host": None, "avx2": AVX2_TARGET, "generic": host_target().without("avx512f", "avx2")}
CASES = [   # x [H, W, C], w [KH, KW, C, COUT], conv padding, pool k
    ((12, 11, 3), (3, 3, 3, 12), "valid", 2),   # window rows; one panel, its second strip 4 columns wide
    ((9, 10, 5), (2, 2, 5, 20), "same", 2),     # generic rows; two panels, the last strip 4 wide
    ((11, 9, 2), (3, 3, 2, 33), "valid", 3),    # 3x3 pool: 9-row tiles; a 1-column last strip
]


def _graph(weights_as_inputs: bool):
    rng = np.random.default_rng(3)
    b = GraphBuilder("avx2_tiles")
    outs = []
    for i, (xs, ws, pad, k) in enumerate(CASES):
        x = b.input(f"x{i}", TensorType(["N", *xs], "i8"))
        value = rng.integers(-127, 128, ws).astype(np.int8)
        w = b.input(f"w{i}", TensorType(list(ws), "i8")) if weights_as_inputs else b.param(f"w{i}", value)
        acc = b.conv2d_integer(x, w, b.constant(np.array(-7, np.int8)), b.constant(np.array(0, np.int8)), padding=pad)
        acc = b.add(acc, b.param(f"bias{i}", rng.integers(-4000, 4000, ws[3]).astype(np.int32)))
        m = b.constant(rng.uniform(2e-4, 2e-3, ws[3]).astype(np.float32))
        h = b.requantize(acc, m, b.constant(np.array(-4, np.int8)), relu=i != 1)
        outs.append(b.max_pool2d(h, pool_size=[k, k], strides=[k, k]))
    return b.build(outs)


def _inputs(n, rng, weights_as_inputs):
    xs = [rng.integers(-128, 128, (n, *xs)).astype(np.int8) for xs, *_ in CASES]
    ws = [rng.integers(-128, 128, ws).astype(np.int8) for _, ws, *_ in CASES] if weights_as_inputs else []
    return [v for pair in zip(xs, ws) for v in pair] if ws else xs


def test_avx2_tiles_and_layout():
    assert AVX2.b_bytes == 2 and VNNI.b_bytes == 1   # the VNNI path keeps its byte panels and tiles
    strips = AVX2.pooled(4)
    assert (strips.mr, strips.nr, strips.panel_nr, strips.kstride) == (12, 8, 16, 64)
    assert AVX2.pooled(9).mr == 9 and AVX2.for_columns(5).pooled(4).nr == 8
    assert VNNI.pooled(4) == VNNI and VNNI.kstride == 128
    assert int8_isa(AVX2_TARGET.features) is AVX2


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_prepacked_weight_names_follow_the_paths_layout(target):
    t = TARGETS[target]
    g, _ = PassManager(graph_pipeline(3, target=t)).run(_graph(False))
    packed = [n for n in g.param_names if "@int8-packed" in n]
    assert len(packed) == len(CASES)
    assert all(("s16" in n.split("/")[-1]) == (target == "avx2") for n in packed), packed
    assert sum("w" in n.split("/")[-1][1:] for n in packed) == 2   # two take the window-row layout
    assert [n.attrs["pool"] for n in g.nodes if n.op == "fused"] == [k for *_, k in CASES]


@pytest.mark.parametrize("weights_as_inputs", [False, True], ids=["prepacked", "packed-per-call"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_pooled_strips_bit_exact(target, weights_as_inputs):
    t = runnable_target(TARGETS, target)
    rng = np.random.default_rng(11)
    assert_native_matches(_graph(weights_as_inputs), lambda n: _inputs(n, rng, weights_as_inputs),
                          batches=(1, 2, 5), rtol=0, atol=0, target=t)
