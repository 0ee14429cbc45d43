"""The CLI over one compiler.driver.Compilation: several emit kinds compile once; --passes reaches --emit so."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kcompile.cli import main
from kcompile.compiler import codelib, driver
from kcompile.runtime import load
from kcompile.runtime.reference import run as reference_run

MLP_PY = """
import numpy as np
from kcompile.ir import GraphBuilder, TensorType
rng = np.random.default_rng(0)
b = GraphBuilder("mlp")
x = b.input("x", TensorType(["N", 6]))
h = b.relu(b.add(b.matmul(x, b.param("w0", rng.normal(size=(6, 8)).astype(np.float32))),
                 b.param("b0", rng.normal(size=8).astype(np.float32))))
model = b.build([b.softmax(b.matmul(h, b.param("w1", rng.normal(size=(8, 3)).astype(np.float32))))], ["y"])
"""


@pytest.fixture
def mlp_py(tmp_path):
    path = tmp_path / "mlp.py"
    path.write_text(MLP_PY)
    return path


def _counting(monkeypatch, owner, name, counts):
    real = getattr(owner, name)

    def counted(*args, **kwargs):
        counts[name] = counts.get(name, 0) + 1
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, counted)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler driver to assemble and link")
def test_several_native_kinds_compile_once(mlp_py, tmp_path, monkeypatch):
    counts = {}
    _counting(monkeypatch, driver, "generate", counts)
    _counting(monkeypatch, codelib.CodeLibrary, "_optimize", counts)
    _counting(monkeypatch, driver.PassManager, "run", counts)
    for llvm_backend in ("emit_assembly", "emit_object"):
        _counting(monkeypatch, codelib.CodeLibrary, llvm_backend, counts)
    out = tmp_path / "out"
    assert main([str(mlp_py), "-o", str(out), "--emit", "opt,llvm,asm,obj,so,header", "--emit", "onnx"]) == 0
    # one entry (forward): the passes run once, and LLVM's code generator once (the object is assembled)
    assert counts == {"generate": 1, "_optimize": 1, "run": 1, "emit_assembly": 1}
    assert {"mlp.ll", "mlp.s", "mlp.o", "libmlp.so", "mlp.h", "mlp.onnx", "mlp.opt.kir"} <= {p.name for p in out.iterdir()}
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    ns = {}
    exec(MLP_PY, ns)
    np.testing.assert_allclose(load(out).predict(x), reference_run(ns["model"], [x])[0], rtol=1e-5, atol=1e-6)


def test_passes_apply_to_emit_so(mlp_py, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(mlp_py), "-o", str(out), "--emit", "so", "--passes", "canonicalize,plan-memory",
                 "--print-ir-after-all"]) == 0
    captured = capsys.readouterr()
    assert "IR after canonicalize" in captured.err and "IR after fuse" not in captured.err
    steps = json.loads((out / "manifest.json").read_text())["compile_seconds"]
    assert "canonicalize (forward)" in steps and "plan-memory (forward)" in steps
    assert not any(k.startswith("fuse") for k in steps)
    assert "fuse (forward)" not in captured.out and "canonicalize (forward)" in captured.out
    x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    ns = {}
    exec(MLP_PY, ns)
    np.testing.assert_allclose(load(out).predict(x), reference_run(ns["model"], [x])[0], rtol=1e-5, atol=1e-6)


_FORKED_EXPORT = """
import sys
from kcompile.cli import main, compile as cli_compile, emit
assert cli_compile._can_fork()          # a fresh CLI process has one thread: the export is forked
if sys.argv[1] == "fail":
    def broken(job):
        raise ValueError("op 'mystery' has no ONNX form")
    emit.EMITTERS["onnx"] = broken
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(shutil.which("cc") is None or not hasattr(os, "fork"), reason="needs cc and fork")
def test_onnx_export_runs_in_a_forked_process_beside_the_native_kinds(mlp_py, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", _FORKED_EXPORT, "ok", str(mlp_py), "-o", str(out), "--emit",
                           "llvm,so,onnx"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {"mlp.ll", "libmlp.so", "mlp.onnx"} <= {p.name for p in out.iterdir()}
    assert "mlp.onnx" in done.stdout                       # the child's files are in the report
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    got = ort.InferenceSession(str(out / "mlp.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, load(out).predict(x), rtol=1e-5, atol=1e-6)
    failed = subprocess.run([sys.executable, "-c", _FORKED_EXPORT, "fail", str(mlp_py), "-o", str(tmp_path / "bad"),
                             "--emit", "so,onnx"], capture_output=True, text=True)
    assert failed.returncode == 1 and "ValueError: op 'mystery' has no ONNX form" in failed.stderr
    assert not (tmp_path / "bad").exists()                 # nothing half-written
