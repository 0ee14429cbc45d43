"""The int8 conv + max pool fusion (passes/fuse_int8_pool.py): which pools join the conv's kernel, and
the pooled kernels bit-exact vs the reference interpreter on the host's path (VNNI here), the forced
AVX2 path and the portable one: odd sizes whose last rows/columns 'valid' pooling drops, 2x2 and 3x3
pools, i8 and u8 outputs, with and without relu, bias, per-column and scalar multipliers, a nonzero
weight zero point, the window-row layout and the generic rows. The fused node exports to ONNX as the
conv + requantize + pool it replaced, and onnxruntime reproduces the reference."""
import numpy as np
import pytest

from kcompile.compiler.driver import graph_pipeline
from kcompile.compiler.jit import compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.interpreter import run
from kcompile.passes import PassManager

from native_util import assert_native_matches, runnable_target

TARGETS = {"host": None, "avx2": host_target().without("avx512f"),
           "generic": host_target().without("avx512f", "avx2")}
TYPES = {"i8": np.int8, "u8": np.uint8}

CASES = [   # x [H, W, C] and dtype, w [KH, KW, C, COUT], conv padding, pool k, out dtype, relu, bias, multiplier
    ((11, 12, 1), "i8", (3, 3, 1, 16), "valid", 2, "i8", True, True, "per-column"),    # window rows, 9x10 -> 4x5
    ((13, 13, 16), "u8", (3, 3, 16, 32), "valid", 2, "u8", False, True, "per-column"),  # 11x11 -> 5x5
    ((10, 9, 3), "i8", (2, 2, 3, 5), "valid", 3, "i8", False, False, "scalar"),         # 9x8 -> 3x2
    ((9, 7, 2), "u8", (3, 3, 2, 33), "same", 2, "u8", True, True, "per-column"),        # edge columns, 9x7 -> 4x3
]


def _graph(cases=CASES, mult_sign=1.0, pool_strides=None):
    rng = np.random.default_rng(5)
    b = GraphBuilder("q_pool")
    outs = []
    for i, (xs, xdt, ws, pad, k, odt, relu, bias, mult) in enumerate(cases):
        x = b.input(f"x{i}", TensorType(["N", *xs], xdt))
        xzp = b.constant(np.array(-5, np.int8) if xdt == "i8" else np.array(131, np.uint8))
        w = b.param(f"w{i}", rng.integers(-127, 128, ws).astype(np.int8))
        wzp = b.constant(np.array(-2 if i == 2 else 0, np.int8))
        acc = b.conv2d_integer(x, w, xzp, wzp, padding=pad)
        if bias:
            acc = b.add(acc, b.param(f"bias{i}", rng.integers(-3000, 3000, ws[3]).astype(np.int32)))
        m = (rng.uniform(2e-4, 2e-3, ws[3]) if mult == "per-column" else np.array(1e-3)) * mult_sign
        ozp = np.array(3, np.int8) if odt == "i8" else np.array(120, np.uint8)
        h = b.requantize(acc, b.constant(m.astype(np.float32)), b.constant(ozp), relu=relu)
        outs.append(b.max_pool2d(h, pool_size=[k, k], strides=list(pool_strides or (k, k))))
    return b.build(outs)


def _inputs(n, rng, cases=CASES):
    return [rng.integers(*((-128, 128) if dt == "i8" else (0, 256)), (n, *xs)).astype(TYPES[dt])
            for xs, dt, *_ in cases]


def _pools(graph, target=None) -> tuple:
    """(the fused nodes' pool attrs, every node's op) after the default pipeline."""
    g, _ = PassManager(graph_pipeline(3, target=target)).run(graph)
    return [n.attrs["pool"] for n in g.nodes if n.op == "fused"], [n.op for n in g.nodes]


def test_each_valid_stride_k_pool_after_a_requantizing_conv_is_fused():
    pools, ops = _pools(_graph())
    assert sorted(pools) == sorted(c[4] for c in CASES) and "max_pool2d" not in ops


@pytest.mark.parametrize("why, graph", [
    ("a negative multiplier reverses the order", lambda: _graph(CASES[:1], mult_sign=-1.0)),
    ("overlapping windows", lambda: _graph(CASES[:1], pool_strides=(1, 1))),
])
def test_pools_the_kernel_cannot_take_stay_plain_and_exact(why, graph):
    g = graph()
    pools, ops = _pools(g)
    assert pools == [0] and "max_pool2d" in ops, why
    assert_native_matches(g, lambda n: _inputs(n, np.random.default_rng(3), CASES[:1]), batches=(2,), rtol=0, atol=0)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_pooled_convolutions_bit_exact(target):
    t = runnable_target(TARGETS, target)
    rng = np.random.default_rng(12)
    assert_native_matches(_graph(), lambda n: _inputs(n, rng), batches=(1, 2, 7), rtol=0, atol=0, target=t)


def test_fused_pool_exports_as_conv_requantize_pool_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from kcompile.compiler.onnx_export import export_onnx
    cases = [CASES[0], CASES[2]]
    g, _ = PassManager(["fuse", "fuse-int8-pool"]).run(_graph(cases))
    assert [n.attrs["pool"] for n in g.nodes if n.op == "fused"] == [2, 3]
    sess = ort.InferenceSession(str(export_onnx(g, tmp_path / "pooled.onnx")), providers=["CPUExecutionProvider"])
    xs = _inputs(3, np.random.default_rng(4), cases)
    want = run(_graph(cases), xs)
    got = sess.run(None, {f"x{i}": x for i, x in enumerate(xs)})
    for w, v in zip(want, got):
        np.testing.assert_array_equal(v, w)
    np.testing.assert_array_equal(compile_graph(g)(xs)[0], want[0])


def test_pooled_convolution_split_over_threads_bit_exact():
    # batch 64 of a 28x28 first layer: enough work that the GEMM's rows are split between two threads
    cases = [((28, 28, 1), "i8", (3, 3, 1, 16), "valid", 2, "i8", True, True, "per-column")]
    g = _graph(cases)
    xs = _inputs(64, np.random.default_rng(8), cases)
    want = run(g, xs)[0]
    for t in (None, TARGETS["avx2"]):
        np.testing.assert_array_equal(compile_graph(g, target=t)(xs, nthreads=2)[0], want)
