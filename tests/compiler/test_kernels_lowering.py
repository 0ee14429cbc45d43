"""matmul / conv / pooling lowerings through compile_graph vs the reference interpreter (several batch sizes)."""
import numpy as np

from kcompile.compiler.jit import compile_graph
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run

from native_util import assert_native_matches, one_op_graph, random_array
from test_kernels_util import every_call_threaded  # noqa: F401 (fixture)

BATCHES = (1, 3)


def _random_inputs(g, seed):
    rng = np.random.default_rng(seed)
    return lambda n: [random_array(rng, v.type.concrete_shape(n), v.type.dtype.np) for v in g.inputs]


def _check_many(name, specs, rtol=1e-5, atol=1e-5):
    """One graph holding one node per (op, input types, attrs): one compile covers them all."""
    b = GraphBuilder(name)
    outs = []
    for i, (op, types, attrs) in enumerate(specs):
        xs = [b.input(f"x{i}_{j}", TensorType(*t)) for j, t in enumerate(types)]
        outs.append(b.op(op, *xs, **attrs))
    g = b.build(outs)
    return assert_native_matches(g, _random_inputs(g, len(specs)), batches=BATCHES, rtol=rtol, atol=atol)


def test_matmul():
    _check_many("matmuls", [
        ("matmul", ((["N", 33], "f32"), ([33, 17], "f32")), {}),
        ("matmul", ((["N", 5, 7], "f32"), (["N", 9, 7], "f32")), {"transpose_b": True}),
        ("matmul", ((["N", 7, 4], "f32"), ([7, 6], "f32")), {"transpose_a": True}),
        ("matmul", ((["N", 9], "f64"), ([9, 3], "f64")), {}),
        ("matmul", ((["N", 9], "i32"), ([9, 3], "i32")), {}),
    ])


def test_convolutions():
    _check_many("convs", [(op, [(s, "f32") for s in shapes], attrs) for op, shapes, attrs in [
        ("conv2d", (["N", 7, 6, 3], [3, 3, 3, 5]), {"strides": (2, 1), "padding": "same"}),
        ("conv2d", (["N", 6, 6, 4], [3, 3, 2, 6]), {"groups": 2, "dilations": (2, 1)}),
        ("conv1d", (["N", 9, 3], [3, 3, 4]), {"padding": "causal", "dilations": 2}),
        ("conv1d", (["N", 9, 4], [2, 2, 6]), {"padding": "same", "strides": 2, "groups": 2}),
        ("conv2d_input_grad", (["N", 4, 6, 5], [3, 3, 3, 5]),
         {"strides": (2, 1), "padding": "same", "input_shape": ("N", 7, 6, 3)}),
        ("conv2d_filter_grad", (["N", 7, 6, 3], ["N", 4, 6, 5]),
         {"strides": (2, 1), "padding": "same", "filter_shape": (3, 3, 3, 5)}),
    ]], rtol=2e-5, atol=2e-5)


def test_pooling_and_grads():
    grad_attrs = {"pool_size": (3, 3), "strides": (2, 2), "padding": "same"}
    _check_many("pools", [
        ("max_pool2d", [(["N", 7, 5, 3], "f32")], {"pool_size": (2, 2), "strides": (2, 2), "padding": "same"}),
        ("avg_pool2d", [(["N", 7, 5, 3], "f32")], {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"}),
        ("max_pool1d", [(["N", 9, 5], "f32")], {"pool_size": (3,), "strides": (2,), "padding": "valid"}),
        ("avg_pool1d", [(["N", 9, 5], "f32")], {"pool_size": (2,), "strides": (2,), "padding": "same"}),
        ("max_pool2d_grad", [(["N", 7, 6, 3], "f32"), (["N", 4, 3, 3], "f32")], grad_attrs),
        ("avg_pool2d_grad", [(["N", 4, 3, 3], "f32")], {**grad_attrs, "input_shape": ("N", 7, 6, 3)}),
    ])


def _dense_relu(b, x, w, bias):
    return b.op("relu", b.op("add", b.op("matmul", x, w), bias))


def test_fused_bias_relu_epilogue_runs_in_the_kernel():
    rng = np.random.default_rng(3)
    b = GraphBuilder("dense")
    x = b.input("x", TensorType(["N", 20]))
    w = b.param("w", rng.standard_normal((20, 40)).astype(np.float32))
    bias = b.param("bias", rng.standard_normal(40).astype(np.float32))
    g = b.build([_dense_relu(b, x, w, bias)])
    fn = compile_graph(g)
    assert "kc_matmul_biasrelu_" in fn.compilation.native.ir_text   # the GEMM applies the epilogue itself
    for n in (1, 5, 33):
        xs = [rng.standard_normal((n, 20)).astype(np.float32)]
        np.testing.assert_allclose(fn(xs)[0], run(g, xs)[0], rtol=1e-5, atol=1e-5)


def test_threads_agree(every_call_threaded):
    g = one_op_graph("conv2d", [TensorType(["N", 9, 9, 3]), TensorType([3, 3, 3, 8])], {"padding": "same"})
    fn = compile_graph(g)
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((4, 9, 9, 3)).astype(np.float32), rng.standard_normal((3, 3, 3, 8)).astype(np.float32)]
    one, two = fn(xs, nthreads=1)[0], fn(xs, nthreads=2)[0]
    np.testing.assert_array_equal(one, two)
