"""The quantize-int8 pass: graph shape, verification, text round trip, reference accuracy, report, ranges."""
import numpy as np
import pytest

from kcompile.compiler.calibrate import CalibrationError, calibrate, evaluate
from kcompile.ir import parse_graph, print_graph, verify
from kcompile.ir.errors import IRError
from kcompile.passes import PassManager
from kcompile.passes.quant_plan import find_groups, value_keys
from kcompile.passes.quant_ranges import (Observer, activation_qparams, entropy_threshold, percentile_threshold,
                                          weight_qparams)
from kcompile.passes.quantize import quantize_int8

from quant_helpers import convnet, images


@pytest.fixture(scope="module")
def calibrated():
    g = convnet().forward_graph()
    x = images(128)
    return g, x, calibrate(g, x, backend="reference")


def ops(graph):
    return [n.op for n in graph.nodes]


def test_groups_and_keys_are_stable_across_traces():
    m = convnet()
    g1, g2 = m.forward_graph(), m.forward_graph()
    assert [g.layer for g in find_groups(g1)] == ["conv", "hidden", "logits"]
    assert sorted(value_keys(g1).values()) == sorted(value_keys(g2).values())


def test_int8_graph_form(calibrated):
    g, x, ranges = calibrated
    q = quantize_int8(g, ranges)
    verify(q)
    o = ops(q)
    assert "conv2d" not in o and "matmul" not in o
    assert o.count("requantize") == 2 and "conv2d_integer" in o and o.count("matmul_integer") == 2
    assert all(n.attrs["relu"] for n in q.nodes if n.op == "requantize")          # relu folded
    assert [p.dtype.name for p in q.params] == ["i8", "i32"] * 3                  # int8 weights, i32 biases
    # hidden -> logits stays int8: logits' matmul_integer reads the requantized value directly
    mm = [n for n in q.nodes if n.op == "matmul_integer"][1]
    assert mm.inputs[0].producer.op == "requantize"
    # conv -> pool -> flatten -> hidden stays int8: the max pool runs on the requantized int8 values
    pool = next(n for n in q.nodes if n.op == "max_pool2d")
    assert pool.inputs[0].producer.op == "requantize" and pool.outputs[0].dtype.name == "i8"
    assert "dequantize" not in [n.op for n in q.nodes][:[n.op for n in q.nodes].index("max_pool2d")]
    text = print_graph(q)
    assert print_graph(parse_graph(text)) == text


def test_int8_graph_matches_float_on_the_reference(calibrated):
    g, x, ranges = calibrated
    y, yq = evaluate(g, [x])[0], evaluate(quantize_int8(g, ranges), [x])[0]
    assert np.abs(y - yq).max() < 0.02
    assert (y.argmax(1) == yq.argmax(1)).mean() >= 0.95


def test_report_names_int8_and_float_layers(calibrated):
    g, _, ranges = calibrated
    rep = quantize_int8(g, ranges, float_layers=["hidden"]).meta["quantization"]
    assert rep["int8"] == ["conv", "logits"]
    floats = {f["layer"]: f["reason"] for f in rep["float"]}
    assert floats["hidden"] == "kept in float on request" and "softmax" in floats["logits"]
    full = quantize_int8(g, ranges).meta["quantization"]
    assert full["weight_bytes_before"] > 2.5 * full["weight_bytes_after"]


def test_float_layer_keeps_its_float_matmul(calibrated):
    g, x, ranges = calibrated
    q = quantize_int8(g, ranges, float_layers=["hidden"])
    assert ops(q).count("matmul") == 1 and ops(q).count("matmul_integer") == 1


def test_missing_range_leaves_layer_float_with_reason(calibrated):
    g, _, ranges = calibrated
    partial = {k: v for k, v in ranges.items() if not k.startswith("hidden/")}
    rep = quantize_int8(g, partial).meta["quantization"]
    assert "hidden" not in rep["int8"]
    assert any(f["layer"] == "hidden" and "no calibrated range" in f["reason"] for f in rep["float"])


def test_pass_manager_runs_it_with_ranges_in_meta(calibrated):
    g, _, ranges = calibrated
    g.meta["quant_ranges"] = ranges
    q, _ = PassManager("quantize-int8,canonicalize", verify_each=True).run(g)
    assert "conv2d_integer" in ops(q)
    del g.meta["quant_ranges"]
    with pytest.raises(IRError, match="no value ranges"):
        PassManager("quantize-int8").run(g)


def test_calibration_methods_and_native_agree_with_reference():
    g, x = convnet().forward_graph(), images(16)
    for method in ("minmax", "percentile", "entropy"):
        native, ref = calibrate(g, x, method), calibrate(g, x, method, backend="reference")
        assert native.keys() == ref.keys()
        assert all(np.allclose(native[k], ref[k], atol=1e-5) for k in native)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 8, 8, 1), np.float32), "no samples"),
    (np.zeros((4, 8, 8), np.float32), "expected rank 4"),
    (np.zeros((4, 8, 7, 1), np.float32), "expected shape"),
    (np.array([["a"] * 64] * 4).reshape(4, 8, 8, 1), "dtype"),
    (np.full((4, 8, 8, 1), np.inf, np.float32), "NaN or infinite"),
])
def test_bad_calibration_data(bad, match):
    with pytest.raises(CalibrationError, match=match):
        calibrate(convnet().forward_graph(), bad)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown calibration method 'kl'"):
        calibrate(convnet().forward_graph(), images(4), "kl")


def test_qparams():
    scale, zp = activation_qparams(0.0, 2.55)
    assert zp == -128 and np.isclose(scale, 0.01)
    scale, zp = activation_qparams(-1.0, 1.0)          # the range maps onto [-128, 127], 0 onto zp exactly
    assert round(-1.0 / scale) + zp in (-128, -127) and round(1.0 / scale) + zp in (126, 127)
    w = np.array([[1.0, -0.5], [-2.0, 0.25]], np.float32)
    q, s = weight_qparams(w, -1)
    assert q.dtype == np.int8 and list(np.abs(q).max(0)) == [127, 127]
    np.testing.assert_allclose(q * s, w, atol=s.max() / 2)


def test_histogram_thresholds():
    hist = np.zeros(2048, np.int64)
    hist[:100] = 1000
    hist[2047] = 1                                      # one far outlier
    assert percentile_threshold(hist, 10.0, 99.9) < 1.0
    assert entropy_threshold(hist, 10.0) < 1.0          # KL clips the outlier
    o = Observer("minmax")
    o.observe_minmax(np.array([-1.0, 3.0]))
    assert o.range() == (-1.0, 3.0)


def test_matmul_of_two_activations_stays_float_and_is_named():
    from kcompile.ir import GraphBuilder, TensorType
    b = GraphBuilder("attn")
    x = b.input("x", TensorType(["N", 4, 6]))
    with b.location("scores"):
        s = b.matmul(x, x, transpose_b=True)
    g = b.build([s])
    q = quantize_int8(g, {value_keys(g)[x]: (-1.0, 1.0)})
    assert [n.op for n in q.nodes] == ["matmul"]
    assert q.meta["quantization"]["float"] == [
        {"layer": "scores", "reason": "matmul: its weight is not a 2-d/4-d parameter (or it is transposed), "
                                      "kept in float"}]
