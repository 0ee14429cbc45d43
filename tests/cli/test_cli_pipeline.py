"""The CLI over one compiler.driver.Compilation: several emit kinds compile once; --passes reaches --emit so."""
from __future__ import annotations

import json
import shutil

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
