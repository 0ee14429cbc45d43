"""Every example runs end to end (reduced epochs and samples; training on the reference backend
to keep the suite fast, while deploy.py compiles and runs native code) and reaches its goal."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name, *args, env=None, timeout=300):
    """Run examples/<name> (seeded, so the results below are deterministic) and return its stdout."""
    env = {**os.environ, "KCOMPILE_BACKEND": "reference", **(env or {})}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--seed", "2", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def metric(text, name):
    m = re.search(rf"{name}: ([0-9.]+(?:e[-+]?[0-9]+)?)", text)
    assert m, f"no '{name}' in the output:\n{text}"
    return float(m.group(1))


def test_mnist_mlp():
    assert metric(run_example("mnist_mlp.py", "--epochs", "1", "--samples", "2000"), "test_acc") > 0.6


def test_mnist_convnet():
    assert metric(run_example("mnist_convnet.py", "--epochs", "1", "--samples", "1000"), "test_acc") > 0.5


def test_breast_cancer_binary():
    assert metric(run_example("breast_cancer_binary.py", "--epochs", "10"), "test_acc") > 0.85


def test_diabetes_regression_mae():
    out = run_example("diabetes_regression_mae.py", "--epochs", "30")
    assert metric(out, "test_mae") < metric(out, "predicting the mean")


def test_functional_two_inputs():
    pytest.importorskip("onnxruntime")
    out = run_example("functional_two_inputs.py", "--epochs", "5")
    assert metric(out, "test_acc") > 0.7
    assert metric(out, "onnxruntime max abs difference") <= 1e-5


def test_custom_layer():
    out = run_example("custom_layer.py", "--epochs", "5")
    assert "(64, 32), (32,), (32, 10), (10,)" in out
    assert metric(out, "test_acc") > 0.7


def test_custom_training_loop():
    out = run_example("custom_training_loop.py", "--epochs", "2")
    assert metric(out, "test_acc") > 0.5
    assert "fitted w=3.000, b=-1.000" in out


@pytest.mark.skipif(shutil.which("cc") is None, reason="deploy.py's C part needs a C compiler (cc)")
def test_deploy_python_c_and_onnx_agree(tmp_path):
    pytest.importorskip("onnxruntime")
    out = run_example("deploy.py", "--epochs", "3", env={"KCOMPILE_DEPLOY_DIR": str(tmp_path)})
    for how in ("python (runtime.load)", "C program", "onnxruntime"):
        line = next(l for l in out.splitlines() if l.startswith(how))
        assert "same classes: True" in line
        assert float(re.search(r"model.predict: ([0-9.e+-]+)", line).group(1)) <= 1e-5
    assert (tmp_path / "digits_artifact" / "libdigits.so").exists() and (tmp_path / "deploy_demo").exists()


def test_digits_augmented_convnet_trains_natively():
    """The augmentation layers inside a natively compiled training step (new transforms every step)."""
    out = run_example("digits_augmented_convnet.py", "--epochs", "4", "--backend", "native")
    assert metric(out, "test_acc") > 0.6
