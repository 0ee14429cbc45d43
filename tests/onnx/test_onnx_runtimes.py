"""Exported models on other onnxruntime targets: the mobile format (.ort, converted with onnxruntime's
own tool and run from that file) and the CUDA provider (run only where onnxruntime reports it)."""
import sys
from pathlib import Path

import numpy as np
import pytest

import kcompile as kc

ort = pytest.importorskip("onnxruntime")
from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quantization"))
from quant_helpers import convnet, images  # noqa: E402

CUDA = "CUDAExecutionProvider"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A float convnet and its static int8 (QDQ) model, exported to ONNX, with inputs and native outputs."""
    out = tmp_path_factory.mktemp("runtimes")
    kc.config.set_backend("reference")   # the oracle; native code is checked against it elsewhere
    float_model, x = convnet(), images(16)
    int8_model = kc.quantization.quantize(float_model, calibration_data=x)
    models = {}
    for name, model in (("float", float_model), ("int8", int8_model)):
        path = out / f"{name}.onnx"
        model.export(path, verbose=False)
        models[name] = (path, model.predict(x, verbose=0))
    kc.config.set_backend(None)
    return models, x


def _run(path, x, providers, **config):
    options = ort.SessionOptions()
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    sess = ort.InferenceSession(str(path), options, providers=providers)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0], sess


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_exported_model_converts_to_ort_format_and_runs_from_it(exported, kind, tmp_path):
    models, x = exported
    onnx_path, native = models[kind]
    # the API behind `python -m onnxruntime.tools.convert_onnx_models_to_ort model.onnx --output_dir DIR`
    convert_onnx_models_to_ort(onnx_path, output_dir=tmp_path, optimization_styles=[OptimizationStyle.Fixed])
    ort_path = tmp_path / f"{kind}.ort"
    assert ort_path.read_bytes()[4:8] == b"ORTM"   # the ORT flatbuffer's file identifier, not ONNX protobuf
    got, sess = _run(ort_path, x, ["CPUExecutionProvider"], **{"session.load_model_format": "ORT"})
    want, _ = _run(onnx_path, x, ["CPUExecutionProvider"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, native, rtol=0, atol=1e-4)
    assert (got.argmax(1) == native.argmax(1)).all()


@pytest.mark.skipif(CUDA not in ort.get_available_providers(),
                    reason=f"onnxruntime reports no {CUDA} (needs onnxruntime-gpu and an NVIDIA GPU); "
                           f"available: {ort.get_available_providers()}")
@pytest.mark.parametrize("kind", ["float", "int8"])
def test_exported_model_runs_on_the_cuda_provider(exported, kind):
    models, x = exported
    onnx_path, native = models[kind]
    got, sess = _run(onnx_path, x, [CUDA, "CPUExecutionProvider"])
    assert sess.get_providers()[0] == CUDA
    want, _ = _run(onnx_path, x, ["CPUExecutionProvider"])
    tol = 1e-4 if kind == "float" else 1e-3   # GPU reductions sum in another order; int8 parts are exact
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    np.testing.assert_allclose(got, native, rtol=0, atol=tol)
