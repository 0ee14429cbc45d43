"""conv2d_transpose natively vs the reference: through the default pipeline (strided ones become a
stride-1 phase-channel conv, passes/subpixel.py) and without that pass (the conv input-gradient kernel
on the adjoint geometry, every tap at every position), on the host's vector width and on AVX2 without
AVX-512; with the fused bias + relu epilogue; and a native training step's gradients."""
import numpy as np
import pytest

from kcompile.compiler.driver import Compilation, CompileOptions, c_symbol
from kcompile.compiler.jit import NativeFunction
from kcompile.compiler.target import host_target
from kcompile.runtime.reference import run
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes import grad_graph

from native_util import assert_native_matches, one_op_graph, runnable_target

TARGETS = {"host": None, "avx2": host_target().without("avx512f")}
# (x (H, W, C), kernel (kh, kw, out, in), attrs): odd sizes, output_padding, rows cut or added at the end
CASES = [((5, 7, 3), (3, 3, 17, 3), {"strides": (2, 2), "padding": "same"}),
         ((4, 3, 6), (4, 2, 5, 6), {"strides": (2, 3), "padding": "same", "output_padding": (1, 2)}),
         ((3, 5, 2), (2, 3, 9, 2), {"strides": (3, 2), "output_padding": (2, 1)}),
         ((6, 4, 5), (3, 2, 4, 5), {"dilations": (2, 1), "padding": "same"}),
         ((3, 3, 40), (1, 1, 3, 40), {"strides": (2, 2)})]                 # stride beyond the kernel, K > KC


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("i", range(len(CASES)))
def test_native_matches_reference(i, target):
    runnable_target(TARGETS, target)
    xs, ws, attrs = CASES[i]
    rng = np.random.default_rng(i)
    w = rng.standard_normal(ws).astype(np.float32)
    g = one_op_graph("conv2d_transpose", [TensorType(("N", *xs)), TensorType(ws)], attrs)
    assert_native_matches(g, lambda n: [rng.standard_normal((n, *xs)).astype(np.float32), w], batches=(1, 3),
                          rtol=1e-4, atol=1e-4, target=TARGETS[target])



@pytest.mark.parametrize("i", range(len(CASES)))
def test_strided_kernel_without_the_subpixel_pass(i):
    xs, ws, attrs = CASES[i]
    rng = np.random.default_rng(i)
    g = one_op_graph("conv2d_transpose", [TensorType(("N", *xs)), TensorType(ws)], attrs)
    fn = NativeFunction(g, Compilation({"forward": g}, c_symbol(g.name),
                                       CompileOptions(passes=("canonicalize", "fuse", "plan-memory"))))
    inputs = [rng.standard_normal((3, *xs)).astype(np.float32), rng.standard_normal(ws).astype(np.float32)]
    np.testing.assert_allclose(fn(inputs)[0], run(g, inputs)[0], rtol=1e-4, atol=1e-4)


def test_bias_relu_epilogue_and_gradients():
    rng = np.random.default_rng(7)
    b = GraphBuilder("up")
    x = b.input("x", TensorType(("N", 5, 6, 4)))
    w = b.param("w", rng.standard_normal((3, 3, 6, 4)).astype(np.float32))
    bias = b.param("b", rng.standard_normal(6).astype(np.float32))
    y = b.relu(b.add(b.conv2d_transpose(x, w, strides=(2, 2), padding="same", output_padding=(1, 0)), bias))
    loss = b.reduce_sum(b.mul(y, y), axes=[])
    g = b.build([loss])
    assert_native_matches(grad_graph(g, ["x", "w", "b"]), lambda n: [rng.standard_normal((n, 5, 6, 4)).astype(np.float32)], batches=(2,),
                          rtol=1e-4, atol=1e-3)
