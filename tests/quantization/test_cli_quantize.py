"""kcompile MODEL --quantize int8 --calibration-data: the int8 graph, its report lines, and bad input."""
import json

import numpy as np
import pytest

from kcompile.cli import main
from kcompile.ir import parse_graph, print_graph

from quant_helpers import convnet, images


@pytest.fixture
def saved(tmp_path):
    convnet().save(tmp_path / "m.keras")
    np.save(tmp_path / "cal.npy", images(32))
    return tmp_path


def test_quantize_emit_opt_and_report(saved, capsys):
    out = saved / "out"
    assert main([str(saved / "m.keras"), "-o", str(out), "--emit", "opt,so", "--quantize", "int8",
                 "--calibration-data", str(saved / "cal.npy"), "--calibration-method", "percentile"]) == 0
    text = next(out.glob("*.opt.kir")).read_text()
    graph_text = print_graph(parse_graph(text))                   # (the file adds memory-plan comments)
    assert print_graph(parse_graph(graph_text)) == graph_text and text.startswith(graph_text.rstrip())
    assert "conv2d_integer" in text and "matmul_integer" in text and "requantize" in text
    report = capsys.readouterr().out
    assert "quantization: int8 (percentile calibration)" in report
    assert "layers in int8: conv, hidden, logits" in report
    assert "logits (softmax: no integer form, kept in float)" in report
    assert "weight bytes: 3,208 -> " in report
    params = {p["name"]: p for p in json.loads((out / "manifest.json").read_text())["params"]}
    assert params["conv/kernel_int8"]["dtype"] == "i8" and params["conv/kernel_int8"]["nbytes"] == 36
    assert {p["dtype"] for p in params.values()} == {"i8", "i32"}           # no float weights left


@pytest.mark.parametrize("extra, match", [
    (["--quantize", "int8"], "needs --calibration-data"),
    (["--calibration-data", "cal.npy"], "add --quantize int8"),
    (["--quantize", "int8", "--calibration-data", "missing.npy"], "no such file"),
    (["--quantize", "int8", "--calibration-data", "bad.npy"], "expected rank 4"),
    (["--quantize", "int8", "--calibration-data", "empty.npy"], "no samples"),
    (["--quantize", "int8", "--calibration-data", "nan.npy"], "NaN"),
])
def test_bad_input_writes_nothing(saved, capsys, extra, match):
    np.save(saved / "bad.npy", images(4)[..., 0])
    np.save(saved / "empty.npy", images(0))
    np.save(saved / "nan.npy", np.full((4, 8, 8, 1), np.nan, np.float32))
    extra = [str(saved / e) if e.endswith(".npy") else e for e in extra]
    assert main([str(saved / "m.keras"), "-o", str(saved / "out"), "--emit", "opt", *extra]) == 1
    assert match in capsys.readouterr().err
    assert not (saved / "out").exists() and not list(saved.glob(".out.*"))
