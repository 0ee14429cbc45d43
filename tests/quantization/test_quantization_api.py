"""kc.quantization and model.quantize("int8"): Keras 3 parity, static int8 models, save/load, fallback, bad input."""
import os
import zipfile

import numpy as np
import pytest

import kcompile as kc

from quant_helpers import convnet, images, mlp, trained_digits_mlp


@pytest.fixture(autouse=True)
def reference_backend():
    kc.config.set_backend("reference")
    yield
    kc.config.set_backend(None)


def test_keras_int8_mode_matches_keras_exactly():
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(1).normal(size=(32, 12)).astype(np.float32)
    km = keras.Sequential([keras.Input((12,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    m = mlp()
    m.set_weights(km.get_weights())
    km.quantize("int8")
    m.quantize("int8")
    for a, b in zip(km.get_weights(), m.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert [w.path.split("/")[-1] for w in m.weights] == [w.path.split("/")[-1] for w in km.weights]
    np.testing.assert_array_equal(m.predict(x, verbose=0), np.asarray(km.predict(x, verbose=0)))


def test_int8_mode_quantizes_activations_per_row():
    m = mlp()
    m.quantize("int8")
    ops = [n.op for n in m.forward_graph().nodes]
    assert ops.count("matmul_integer") == 2 and "matmul" not in ops
    assert any(n.op == "reduce_max" and n.attrs["axes"] == (-1,) for n in m.forward_graph().nodes)


def test_int8_mode_save_load_export(tmp_path):
    m = mlp()
    x = np.random.default_rng(0).normal(size=(16, 12)).astype(np.float32)
    m.quantize("int8")
    y = m.predict(x, verbose=0)
    m.save(tmp_path / "m.keras")
    loaded = kc.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), y)
    assert [w.dtype for w in loaded.weights] == [w.dtype for w in m.weights]
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        with z.open("weights.npz") as f:
            arrays = np.load(f, allow_pickle=False)
            assert sorted(str(arrays[k].dtype) for k in arrays.files).count("int8") == 2


@pytest.mark.parametrize("mode, error", [("int4", NotImplementedError), ("float8", NotImplementedError),
                                         ("int3", ValueError), (None, ValueError)])
def test_other_modes_are_refused(mode, error):
    with pytest.raises(error, match="mode"):
        mlp().quantize(mode)


def test_quantize_twice_and_unbuilt_are_refused():
    m = mlp()
    m.quantize("int8")
    with pytest.raises(ValueError, match="already quantized"):
        m.quantize("int8")
    unbuilt = kc.Sequential([kc.layers.Dense(3)])
    with pytest.raises(ValueError, match="isn't yet built"):
        unbuilt.quantize("int8")
    with pytest.raises(ValueError, match="isn't yet built"):
        kc.quantization.quantize(unbuilt, calibration_data=np.zeros((4, 3), np.float32))


def test_static_model_is_new_and_int8():
    m, x = convnet(), images(96)
    y = m.predict(x, verbose=0)
    q = kc.quantization.quantize(m, calibration_data=x)
    assert q is not m and all(w.dtype == "float32" for w in m.weights)          # the original is untouched
    assert {w.path: w.dtype for w in q.weights}["conv/kernel"] == "int8"
    rep = q.quantization_report
    assert rep["int8"] == ["conv", "hidden", "logits"] and rep["weight_bytes_before"] > 2.5 * rep["weight_bytes_after"]
    yq = q.predict(x, verbose=0)
    assert (yq.argmax(1) == y.argmax(1)).mean() >= 0.95 and np.abs(yq - y).max() < 0.02


def test_static_model_saves_and_loads_exactly(tmp_path):
    m, x = convnet(), images(64)
    q = kc.quantization.quantize(m, calibration_data=x, method="entropy", per_channel=False)
    q.save(tmp_path / "q.keras")
    loaded = kc.models.load_model(tmp_path / "q.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), q.predict(x, verbose=0))
    for a, b in zip(q.weights, loaded.weights):
        assert a.dtype == b.dtype and np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("kwargs, match", [
    ({}, "needs calibration_data"),
    ({"calibration_data": images(4), "method": "kl"}, "unknown calibration method"),
    ({"calibration_data": images(0)}, "no samples"),
    ({"calibration_data": np.full((4, 8, 8, 1), np.nan, np.float32)}, "NaN"),
    ({"calibration_data": images(4)[:, :, :, 0]}, "expected rank 4"),
    ({"calibration_data": images(4), "max_accuracy_drop": 0.01}, "go together"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.quantization.quantize(convnet(), **kwargs)


def test_accuracy_aware_fallback_keeps_sensitive_layers_float():
    m, (x, y), (xt, yt) = trained_digits_mlp()
    q = kc.quantization.quantize(m, calibration_data=x[:256], validation_data=(xt, yt), max_accuracy_drop=1.0)
    fb = q.quantization_report["accuracy_fallback"]
    assert fb["kept_float"] == [] and fb["met"]                                   # a loose bound keeps all int8
    strict = kc.quantization.quantize(m, calibration_data=x[:256], validation_data=(xt, yt), max_accuracy_drop=0.0)
    fb = strict.quantization_report["accuracy_fallback"]
    assert fb["met"] and fb["final_accuracy"] >= fb["float_accuracy"]
    assert set(fb["kept_float"]) <= {"dense", "dense_1"} and set(fb["sensitivity"]) == {"dense", "dense_1"}
    kept = strict.quantization_report["float"]
    assert all(any(f["layer"] == k and "on request" in f["reason"] for f in kept) for k in fb["kept_float"])


def _both_backends(model, x):
    kc.config.set_backend(None)
    native = model.predict(x, verbose=0)
    kc.config.set_backend("reference")
    return native, model.predict(x, verbose=0)


def test_static_int8_runs_natively_and_exports_qdq_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import onnx
    m, x = convnet(), images(64)
    q = kc.quantization.quantize(m, calibration_data=x)
    native, ref = _both_backends(q, x)
    np.testing.assert_allclose(native, ref, rtol=0, atol=1e-6)    # integer parts exact; f32 tails to an ulp
    q.export(tmp_path / "q.onnx", verbose=False)
    onnx.checker.check_model(str(tmp_path / "q.onnx"), full_check=True)
    types = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "MatMulInteger", "ConvInteger", "MaxPool"} <= types   # the pool runs on int8
    sess = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert (got.argmax(1) == native.argmax(1)).all() and np.abs(got - native).max() < 1e-4


def test_keras_int8_mode_runs_natively_and_exports(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m, x = mlp(), np.random.default_rng(0).normal(size=(40, 12)).astype(np.float32)
    m.quantize("int8")
    native, ref = _both_backends(m, x)
    np.testing.assert_array_equal(native, ref)
    m.export(tmp_path / "m.onnx", verbose=False)
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], native, rtol=0, atol=1e-6)
