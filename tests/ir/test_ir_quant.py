"""A quantized graph (constants for scales and zero points, 0-d and 1-d) prints, parses back
exactly, verifies and runs in the reference interpreter; the quantization ops are not differentiable."""
import numpy as np
import pytest

from kcompile.ir import OPS, GraphBuilder, TensorType, parse_graph, print_graph
from kcompile.runtime.reference import run

QMLP_TEXT = """\
graph @qmlp(%x: f32[N,5]) -> (y: f32[N,3]) {
  %dense_kernel_q = param "dense/kernel_q" : i8[5,3]
  %0 = constant() {value=array(f32[], [0.0625])} : f32[]
  %1 = constant() {value=array(u8[], [128])} : u8[]
  %2 = quantize(%x, %0, %1) : u8[N,5]
  %3 = constant() {value=array(i8[], [0])} : i8[]
  %4 = matmul_integer(%2, %dense_kernel_q, %1, %3) : i32[N,3]
  %5 = constant() {value=array(f32[3], [0.03125, 0.0078125, 0.25])} : f32[3]
  %6 = requantize(%4, %5, %1) {relu=true} : u8[N,3]
  %7 = dequantize(%6, %0, %1) : f32[N,3]
  return %7
}
"""


def build_qmlp():
    b = GraphBuilder("qmlp")
    x = b.input("x", TensorType(["N", 5]))
    w = b.param("dense/kernel_q", np.arange(-7, 8, dtype=np.int8).reshape(5, 3))
    scale, zp = b.constant(np.array(0.0625, np.float32)), b.constant(np.array(128, np.uint8))
    q = b.quantize(x, scale, zp)
    acc = b.matmul_integer(q, w, zp, b.constant(np.array(0, np.int8)))
    y = b.requantize(acc, b.constant(np.array([0.03125, 0.0078125, 0.25], np.float32)), zp, relu=True)
    return b.build([b.dequantize(y, scale, zp)], ["y"])


def test_quantized_graph_text_is_golden_and_round_trips():
    g = build_qmlp()
    assert print_graph(g) == QMLP_TEXT
    assert print_graph(parse_graph(QMLP_TEXT)) == QMLP_TEXT


def test_quantized_graph_runs_and_matches_the_float_computation_it_encodes():
    g = build_qmlp()
    x = np.array([[0.5, -1.0, 0.25, 2.0, -0.0625]], np.float32)
    (y,) = run(g, [x])
    w = np.arange(-7, 8).reshape(5, 3)
    acc = np.rint(x / 0.0625) @ w     # the inputs are exact multiples of the scale
    expect = (np.clip(np.rint(acc * np.array([0.03125, 0.0078125, 0.25])) + 128, 128, 255) - 128) * 0.0625
    np.testing.assert_array_equal(y, expect.astype(np.float32))


@pytest.mark.parametrize("op", ["quantize", "dequantize", "matmul_integer", "conv2d_integer", "requantize"])
def test_quantization_ops_are_not_differentiable(op):
    assert not OPS[op].differentiable  # fake-quant training has its own op with a straight-through rule
