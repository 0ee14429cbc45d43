"""The float conv + bias + relu + max pool fusion (passes/fuse_conv_pool.py, compiler/kernels/conv_pool.py):
which pools join the conv's kernel, and the pooled kernels bitwise equal to the unfused native graph
(random data) and to the reference interpreter (integer-valued data, whose sums are exact) on the host's
path (AVX-512 here), the forced AVX2 path and the portable one, on odd sizes whose last rows/columns a
'valid' pool drops, 2x2 and 3x3 pools, the direct first-layer kernel and the GEMM, batch remainders
and thread counts. The fused node exports to ONNX as the conv + bias + relu + pool it replaced."""
import numpy as np
import pytest

from kcompile.compiler.driver import Compilation, CompileOptions, graph_pipeline
from kcompile.compiler.jit import NativeFunction, compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.interpreter import run
from kcompile.passes import PassManager, grad_graph

from native_util import runnable_target

TARGETS = {"host": None, "avx2": host_target().without("avx512f"),
           "generic": host_target().without("avx512f", "avx2")}

CASES = [   # x [H, W, C], w [KH, KW, C, COUT], conv padding, pool k, relu, bias
    ((12, 11, 1), (3, 3, 1, 32), "valid", 2, True, True),      # direct (K = 9): 10x9 -> 5x4
    ((13, 13, 8), (3, 3, 8, 20), "valid", 2, True, True),      # GEMM, edge columns: 11x11 -> 5x5
    ((10, 9, 3), (2, 2, 3, 5), "valid", 3, False, True),       # direct, 3x3 pool, linear: 9x8 -> 3x2
    ((9, 11, 4), (3, 3, 4, 33), "same", 3, True, False),       # GEMM, 3x3 pool, relu only: 9x11 -> 3x3
    ((9, 10, 4), (3, 3, 4, 12), "valid", 2, False, True),      # GEMM, one column vector (24-row tiles): 7x8 -> 3x4
    ((9, 12, 1), (3, 3, 1, 16), "same", 2, True, True),        # direct, padded edge columns per pixel: 9x12 -> 4x6
]


def _graph(cases=CASES, pool=None, extra_reader=False, integers=False):
    rng = np.random.default_rng(5)
    draw = (lambda s: rng.integers(-3, 4, s)) if integers else (lambda s: rng.normal(size=s))
    b = GraphBuilder("conv_pool")
    outs = []
    for i, (xs, ws, pad, k, relu, bias) in enumerate(cases):
        x = b.input(f"x{i}", TensorType(["N", *xs], "f32"))
        y = b.conv2d(x, b.param(f"w{i}", draw(ws).astype(np.float32)), padding=pad)
        if bias:
            y = b.add(y, b.param(f"b{i}", draw(ws[3]).astype(np.float32)))
        if relu:
            y = b.relu(y)
        size, strides, padding = pool or ([k, k], [k, k], "valid")
        outs.append(b.max_pool2d(y, pool_size=size, strides=strides, padding=padding))
        if extra_reader:
            outs.append(b.reduce_sum(y))
    return b.build(outs)


def _inputs(n, rng, cases=CASES, integers=False):
    return [(rng.integers(-3, 4, (n, *c[0])) if integers else rng.normal(size=(n, *c[0]))).astype(np.float32)
            for c in cases]


def _pools(graph, target=None) -> tuple:
    """(the fused nodes' pool attrs, every node's op) after the default pipeline."""
    g, _ = PassManager(graph_pipeline(3, target=target)).run(graph)
    return [n.attrs["pool"] for n in g.nodes if n.op == "fused"], [n.op for n in g.nodes]


def _unfused(graph, target=None) -> NativeFunction:
    """The graph compiled by the default pipeline without fuse-conv-pool."""
    passes = tuple(p for p in graph_pipeline(3, target=target) if p != "fuse-conv-pool")
    return NativeFunction(graph, Compilation({"forward": graph}, "unfused", CompileOptions(passes=passes, target=target),
                                             kernel_library=True))


def test_each_valid_stride_k_pool_after_a_float_conv_epilogue_is_fused():
    pools, ops = _pools(_graph())
    assert sorted(pools) == sorted(c[3] for c in CASES) and "max_pool2d" not in ops


def _loss_grad():
    """A train step's graph: the backward pass reads the relu's output (relu and pool gradients)."""
    rng = np.random.default_rng(1)
    b = GraphBuilder("train")
    x = b.input("x", TensorType(["N", 8, 8, 2], "f32"))
    y = b.relu(b.add(b.conv2d(x, b.param("w", rng.normal(size=(3, 3, 2, 4)).astype(np.float32))),
                     b.param("b", np.zeros(4, np.float32))))
    loss = b.reduce_sum(b.max_pool2d(y, pool_size=[2, 2], strides=[2, 2]))
    return grad_graph(b.build([loss]), ["w", "b"])


@pytest.mark.parametrize("why, graph", [
    ("same-padded pool", lambda: _graph(CASES[1:2], pool=([2, 2], [2, 2], "same"))),
    ("overlapping windows", lambda: _graph(CASES[1:2], pool=([2, 2], [1, 1], "valid"))),
    ("a 4x4 pool", lambda: _graph([((13, 13, 8), (3, 3, 8, 20), "valid", 4, True, True)])),
    ("the activation has another reader", lambda: _graph(CASES[1:2], extra_reader=True)),
])
def test_pools_the_kernel_cannot_take_stay_plain_and_exact(why, graph):
    g = graph()
    pools, ops = _pools(g)
    assert pools == [0] and "max_pool2d" in ops, why
    fn, xs = compile_graph(g), _inputs(3, np.random.default_rng(3), CASES[1:2])
    for got, want in zip(fn(xs), _unfused(g)(xs)):
        np.testing.assert_array_equal(got, want)


def test_a_training_graph_keeps_the_activation_its_backward_pass_reads():
    pools, ops = _pools(_loss_grad())
    assert 2 not in pools and "max_pool2d" in ops and "max_pool2d_grad" in ops


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_pooled_convolutions_bitwise_equal_unfused_and_reference(target):
    t = runnable_target(TARGETS, target)
    rng = np.random.default_rng(12)
    g, gi = _graph(), _graph(integers=True)
    fused, fused_i, plain = compile_graph(g, target=t), compile_graph(gi, target=t), _unfused(g, target=t)
    for n in (1, 2, 7):
        xs = _inputs(n, rng)
        xs[1][0, 0, 0, 0] = np.nan   # NaN propagates through the fused max as through the pool kernel
        for got, want in zip(fused(xs), plain(xs)):
            np.testing.assert_array_equal(got, want)
        xi = _inputs(n, rng, integers=True)
        for got, want in zip(fused_i(xi), run(gi, xi)):
            np.testing.assert_array_equal(got, want)


def test_pooled_convolution_does_not_depend_on_the_thread_count():
    # the book's convnet layers at batch 64: enough work that rows split between threads
    cases = [((28, 28, 1), (3, 3, 1, 32), "valid", 2, True, True), ((13, 13, 32), (3, 3, 32, 64), "valid", 2, True, True)]
    g = _graph(cases)
    xs = _inputs(64, np.random.default_rng(8), cases)
    for t in (None, TARGETS["avx2"]):
        want = _unfused(g, target=t)(xs, nthreads=1)
        for threads in (1, 2, 3):
            for got, w in zip(compile_graph(g, target=t)(xs, nthreads=threads), want):
                np.testing.assert_array_equal(got, w)


def test_fused_pool_exports_as_conv_bias_relu_pool_to_onnx(tmp_path):
    ort = pytest.importorskip("onnx") and pytest.importorskip("onnxruntime")
    import onnx
    from kcompile.compiler.onnx_export import export_onnx
    gi = _graph(integers=True)
    g, _ = PassManager(["fuse", "fuse-conv-pool"]).run(gi)
    assert sorted(n.attrs["pool"] for n in g.nodes if n.op == "fused") == [2, 2, 2, 2, 3, 3]
    path = export_onnx(g, tmp_path / "pooled.onnx")
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Conv") == 6 and ops.count("MaxPool") == 6 and ops.count("Relu") == 4
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = _inputs(3, np.random.default_rng(4), integers=True)
    got = sess.run(None, {f"x{i}": x for i, x in enumerate(xs)})
    for w, v in zip(run(gi, xs), got):
        np.testing.assert_array_equal(v, w)


@pytest.mark.parametrize("change, message", [
    ({"in_kernel": 2, "activation": "linear"}, "needs the whole epilogue"),
    ({"activation": "requantize"}, "requantize"),
])
def test_a_pooled_float_epilogue_must_be_whole_and_not_requantize(change, message):
    from kcompile.ir.errors import IRError
    from kcompile.ir.registry import OPS
    g, _ = PassManager(["fuse", "fuse-conv-pool"]).run(_graph(CASES[1:2]))
    node = next(n for n in g.nodes if n.op == "fused")
    assert OPS["fused"].infer_types([v.type for v in node.inputs], node.attrs, "ok") == [node.outputs[0].type]
    with pytest.raises(IRError, match=message):
        OPS["fused"].infer_types([v.type for v in node.inputs], {**node.attrs, **change}, "bad")


def test_a_contraction_longer_than_one_k_block_runs_in_one_block_exactly():
    cases = [((8, 7, 96), (3, 3, 96, 40), "valid", 2, True, True)]   # K = 864 > KC = 384 (f32)
    g = _graph(cases, integers=True)
    fn = compile_graph(g)
    for n in (1, 5):
        xs = _inputs(n, np.random.default_rng(n), cases, integers=True)
        np.testing.assert_array_equal(fn(xs, nthreads=2)[0], run(g, xs)[0])
