"""A whole quantized graph (QDQ around integer matmul/conv, requantize with relu, per-channel weight
zero points) exports to ONNX that passes the full checker, and onnxruntime's CPU provider reproduces
the reference interpreter and the native code exactly (not within a quantization step: every step
is integer or one defined f32 operation that ORT computes the same way, and NaN saturates to the
lower bound in all three)."""
import numpy as np
import onnx
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.compiler.onnx_export import export_onnx, to_onnx_model
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")


def quantized_convnet():
    rng = np.random.default_rng(0)
    b = GraphBuilder("qconv")
    x = b.input("x", TensorType(["N", 8, 7, 3]))
    s_in, z_in = b.constant(np.array(0.05, np.float32)), b.constant(np.array(-3, np.int8))
    q = b.quantize(x, s_in, z_in)
    w1 = b.param("conv/kernel_q", rng.integers(-127, 128, (3, 3, 3, 6)).astype(np.int8))
    acc = b.conv2d_integer(q, w1, z_in, b.constant(rng.integers(-3, 4, 6).astype(np.int8)), padding="same",
                           strides=(2, 1))
    z_mid = b.constant(np.array(-128, np.int8))
    h = b.requantize(acc, b.constant(rng.uniform(1e-3, 4e-3, 6).astype(np.float32)), z_mid, relu=True)
    flat = b.reshape(h, shape=["N", 4 * 7 * 6])
    w2 = b.param("dense/kernel_q", rng.integers(-127, 128, (168, 10)).astype(np.int8))
    acc2 = b.matmul_integer(flat, w2, z_mid, b.constant(np.zeros(10, np.int8)))
    y = b.dequantize(acc2, b.constant(rng.uniform(1e-4, 1e-3, 10).astype(np.float32)),
                     b.constant(np.zeros(10, np.int32)))
    return b.build([y, h], ["logits", "features"])


def test_quantized_graph_onnx_matches_reference_and_native(tmp_path):
    g = quantized_convnet()
    onnx.checker.check_model(to_onnx_model(g), full_check=True)
    sess = ort.InferenceSession(str(export_onnx(g, tmp_path / "q.onnx")), providers=["CPUExecutionProvider"])
    native = compile_graph(g)
    rng = np.random.default_rng(1)
    for batch in (1, 5):
        x = rng.normal(0, 3, (batch, 8, 7, 3)).astype(np.float32)
        x[0, 0, 0, :3] = [np.nan, np.inf, 0.025]          # NaN, saturation, an exact tie
        want = run(g, [x])
        for got in (sess.run(None, {"x": x}), native([x])):
            for w, v in zip(want, got):
                np.testing.assert_array_equal(v, w)
