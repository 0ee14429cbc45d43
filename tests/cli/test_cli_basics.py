"""The kcompile CLI: emit kinds that need no native backend (ir, onnx), run/inspect of ONNX
files, every error as one line with a non-zero status, and no partial output on failure."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest

from kcompile.cli import main
from kcompile.cli.args import compile_parser, inspect_parser, run_parser
from kcompile.ir import parse_graph, print_graph
from kcompile.runtime.reference import run as reference_run

MODEL_PY = """
import numpy as np
from kcompile.ir import GraphBuilder, TensorType

def build_model():
    rng = np.random.default_rng(0)
    b = GraphBuilder("tiny_mlp")
    x = b.input("features", TensorType(["N", 4]))
    with b.location("dense"):
        h = b.relu(b.matmul(x, b.param("dense/kernel", rng.normal(size=(4, 8)).astype(np.float32))))
    with b.location("head"):
        y = b.softmax(b.matmul(h, b.param("head/kernel", rng.normal(size=(8, 3)).astype(np.float32))))
    return b.build([y, h], ["probs", "hidden"])
"""


@pytest.fixture
def model_py(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_PY)
    return path


def _graph(model_py):
    ns = {}
    exec(compile(model_py.read_text(), str(model_py), "exec"), ns)
    return ns["build_model"]()


def _one_error_line(capsys, status, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    assert status != 0
    assert len(err) == 1 and err[0].startswith("kcompile: error: "), err
    for f in fragments:
        assert f in err[0], err[0]


def test_emit_ir_parses_back(model_py, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(model_py), "-o", str(out), "--emit", "ir"]) == 0
    text = (out / "tiny_mlp.kir").read_text()
    assert print_graph(parse_graph(text)) == text == print_graph(_graph(model_py))
    report = capsys.readouterr().out
    assert "tiny_mlp.kir" in report and "parameters: 56" in report


def test_emit_onnx_checks_and_runs(model_py, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    assert main([str(model_py), "-o", str(out), "--emit", "onnx,ir", "--emit", "onnx"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["tiny_mlp.kir", "tiny_mlp.onnx"]
    onnx.checker.check_model(str(out / "tiny_mlp.onnx"), full_check=True)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    got = ort.InferenceSession(str(out / "tiny_mlp.onnx")).run(None, {"features": x})
    for g, w in zip(got, reference_run(_graph(model_py), [x])):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)


def test_onnx_batch_and_opset_and_name(model_py, tmp_path):
    out = tmp_path / "out"
    assert main([str(model_py), "-o", str(out), "--emit", "onnx", "--batch", "2", "--opset", "21",
                 "--name", "my-net"]) == 0
    model = onnx.load(str(out / "my_net.onnx"))
    assert model.opset_import[0].version == 21
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


def test_run_and_inspect_onnx(model_py, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "out"
    main([str(model_py), "-o", str(out), "--emit", "onnx"])
    x = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(out / "tiny_mlp.onnx"), "--input", f"features={tmp_path / 'x.npy'}",
                 "--output", str(tmp_path / "y.npz")]) == 0
    saved = np.load(tmp_path / "y.npz")
    want = reference_run(_graph(model_py), [x])
    np.testing.assert_allclose(saved["probs"], want[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(saved["hidden"], want[1], atol=1e-5, rtol=0)
    capsys.readouterr()
    assert main(["run", str(out / "tiny_mlp.onnx"), "--input", str(tmp_path / "x.npy")]) == 0
    assert "probs: float32[3, 3]" in capsys.readouterr().out
    assert main(["inspect", str(out / "tiny_mlp.onnx")]) == 0
    text = capsys.readouterr().out
    assert "input  features: float32[N,4]" in text and "opset 18" in text


def test_model_variable_and_existing_outdir(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(MODEL_PY + "\nmodel = build_model()\nif __name__ == '__main__':\n    raise SystemExit(9)\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main([str(src), "-o", str(out), "--emit", "ir"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "tiny_mlp.kir"]


@pytest.mark.parametrize("argv, fragments", [
    (["missing.py", "-o", "OUT"], ["model 'missing.py' does not exist"]),
    (["MODEL", "-o", "OUT", "--emit", "wasm"], ["unknown --emit kind 'wasm'"]),
    (["MODEL", "-o", "OUT", "--batch", "0"], ["--batch must be a positive integer"]),
    (["MODEL", "-o", "OUT", "--emit", "onnx", "--opset", "9"], ["opset 9 is not supported"]),
    (["MODEL", "-o", "NOFOLDER/OUT"], ["does not exist"]),
    (["MODEL", "-o", "OUT", "--emit", "ir", "--opset", "19"], ["--opset applies to --emit onnx only"]),
    (["MODEL", "-o", "OUT", "--loss", "mse"], ["add --train"]),
    (["MODEL", "-o", "OUT", "--emit", "onnx", "--verify-each"], ["act on the native pipeline"]),
    (["run", "missing", "--input", "x.npy"], ["artifact 'missing' does not exist"]),
    (["inspect", "MODEL"], ["neither a .onnx file nor an artifact folder"]),
])
def test_errors_are_one_line(argv, fragments, model_py, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(model_py) if a == "MODEL" else a for a in argv]
    _one_error_line(capsys, main(argv), *fragments)
    assert not (tmp_path / "OUT").exists()


def test_python_file_without_a_model(tmp_path, capsys):
    src = tmp_path / "empty.py"
    src.write_text("x = 1\n")
    _one_error_line(capsys, main([str(src), "-o", str(tmp_path / "out")]), "neither a `model` object")
    src.write_text("raise RuntimeError('broken\\nmodel file')\n")
    _one_error_line(capsys, main([str(src), "-o", str(tmp_path / "out")]), "RuntimeError: broken model file")
    src.write_text("import sys\nsys.exit(0)\n")
    _one_error_line(capsys, main([str(src), "-o", str(tmp_path / "out")]), "exited (status 0) instead of defining")
    src.write_text("model = 42\n")
    _one_error_line(capsys, main([str(src), "-o", str(tmp_path / "out")]), "neither a kcompile model")


def test_failure_leaves_no_partial_output(tmp_path, capsys):
    src = tmp_path / "clash.py"
    src.write_text(textwrap.dedent("""
        from kcompile.ir import GraphBuilder, TensorType
        b = GraphBuilder("clash")
        x = b.input("x", TensorType(["N", 4]))
        model = b.build([b.neg(x)], ["x"])   # the output reuses the input's name: ONNX refuses
    """))
    status = main([str(src), "-o", str(tmp_path / "out"), "--emit", "ir,onnx"])
    _one_error_line(capsys, status, "the name 'x' is used twice")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clash.py"]  # no out/, no staging folder


def test_run_input_errors(model_py, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    main([str(model_py), "-o", str(tmp_path / "out"), "--emit", "onnx"])
    model = str(tmp_path / "out" / "tiny_mlp.onnx")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 4), np.float32))
    capsys.readouterr()
    _one_error_line(capsys, main(["run", model, "--input", str(x), "--input", str(x)]), "takes 1 input(s)")
    _one_error_line(capsys, main(["run", model, "--input", f"pixels={x}"]), "unknown input name")
    _one_error_line(capsys, main(["run", model, "--input", str(x), "--output", str(tmp_path / "y.npy")]),
                    "has 2 outputs")
    np.save(tmp_path / "obj.npy", np.array([object()], dtype=object), allow_pickle=True)
    _one_error_line(capsys, main(["run", model, "--input", str(tmp_path / "obj.npy")]), "not a plain .npy")
    assert not (tmp_path / "y.npy").exists()


def test_help_documents_every_option(capsys):
    for parser in (compile_parser(), run_parser(), inspect_parser()):
        text = parser.format_help()
        for action in parser._actions:
            for opt in action.option_strings:
                assert opt in text
            if action.option_strings and action.dest != "help":
                assert action.help, f"{parser.prog} {action.option_strings} has no help text"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for kind in ("ir", "opt", "llvm", "asm", "obj", "so", "header", "onnx"):
        assert f"  {kind} " in out
    assert "kcompile run ARTIFACT" in out and "kcompile inspect ARTIFACT" in out


def test_console_script_version_and_exit_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kcompile.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("kcompile ")
    done = subprocess.run([sys.executable, "-m", "kcompile.cli", str(tmp_path / "none.py"), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
    done = subprocess.run([sys.executable, "-m", "kcompile.cli"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: kcompile" in done.stderr


EW_PY = """
import numpy as np
from kcompile.ir import GraphBuilder, TensorType
b = GraphBuilder("ew")
x = b.input("x", TensorType(["N", 5]))
model = b.build([b.tanh(b.relu(b.mul(x, b.param("w", np.linspace(-1, 1, 5, dtype=np.float32)))))], ["y"])
"""


def test_emit_opt_llvm_asm_obj(tmp_path, capsys):
    llvm = pytest.importorskip("llvmlite.binding")
    src = tmp_path / "ew.py"
    src.write_text(EW_PY)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--emit", "opt,llvm,asm,obj", "--verify-each", "-O2"]) == 0
    report = capsys.readouterr().out
    for fragment in ("kernels: 1", "arena: ", "fuse (forward)", "llvm-optimize", "parameters: 5"):
        assert fragment in report
    opt = (out / "ew.opt.kir").read_text()
    (fused,) = [n for n in parse_graph(opt).nodes if n.op == "fused"]  # the fused node parses back, region and all
    assert [n.op for n in fused.attrs["body"].nodes] == ["mul", "relu", "tanh"] and fused.attrs["kind"] == "loop"
    assert print_graph(parse_graph(opt)) == "".join(ln for ln in opt.splitlines(True) if not ln.startswith("//"))
    llvm.parse_assembly((out / "ew.ll").read_text()).verify()
    assert "ew_forward" in (out / "ew.s").read_text()
    obj = (out / "ew.o").read_bytes()
    assert obj[:4] in (b"\x7fELF", b"\xcf\xfa\xed\xfe") and b"ew_forward" in obj


def test_pass_options(tmp_path, capsys):
    src = tmp_path / "ew.py"
    src.write_text(EW_PY)
    out = tmp_path / "out"
    assert main([str(src), "-o", str(out), "--emit", "opt", "--passes", "canonicalize,plan-memory",
                 "--print-ir-after-all"]) == 0
    captured = capsys.readouterr()
    assert "IR after canonicalize" in captured.err and "IR after plan-memory" in captured.err
    assert "fused(" not in (out / "ew.opt.kir").read_text()
    _one_error_line(capsys, main([str(src), "-o", str(tmp_path / "o2"), "--emit", "opt", "--passes", "bogus"]),
                    "unknown pass 'bogus'")
    _one_error_line(capsys, main([str(src), "-o", str(tmp_path / "o2"), "--emit", "llvm", "--target", "riscv64"]),
                    "only 'host'")
    assert not (tmp_path / "o2").exists()


def test_emit_so_and_header_then_run_and_inspect(model_py, tmp_path, capsys):
    import shutil
    out = tmp_path / "art"
    assert main([str(model_py), "-o", str(out), "--emit", "header,so"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["libtiny_mlp.so", "manifest.json", "tiny_mlp.h", "weights.bin"]
    from kcompile.runtime import load
    x = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    got = load(out).predict(x)
    for g, w in zip(got, reference_run(_graph(model_py), [x])):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-5)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    assert main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npz"),
                 "--batch-size", "4"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["probs"], got[0], atol=1e-6, rtol=0)
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "entry forward: tiny_mlp_forward(features: f32[N,4])" in text and "format kcompile-artifact" in text
    cc = shutil.which("cc")
    if cc:  # the header is valid C
        src = tmp_path / "use.c"
        src.write_text('#include "tiny_mlp.h"\nint main(void) { return tiny_mlp_forward_workspace_size(1) < 0; }\n')
        done = subprocess.run([cc, "-fsyntax-only", f"-I{out}", str(src)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_run_refuses_a_corrupt_artifact(model_py, tmp_path, capsys):
    out = tmp_path / "art"
    assert main([str(model_py), "-o", str(out)]) == 0
    (out / "weights.bin").write_bytes(b"\0" * 8)
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    capsys.readouterr()
    _one_error_line(capsys, main(["run", str(out), "--input", str(tmp_path / "x.npy")]), "weights")


def test_batch_specializes_native_graphs(model_py, tmp_path):
    out = tmp_path / "out"
    assert main([str(model_py), "-o", str(out), "--emit", "ir,opt,header", "--batch", "4"]) == 0
    assert "%features: f32[N,4]" in (out / "tiny_mlp.kir").read_text()        # the traced IR stays generic
    opt = (out / "tiny_mlp.opt.kir").read_text()
    assert "%features: f32[4,4]" in opt and "[N" not in opt
    assert "input 0: features f32[4,4]" in (out / "tiny_mlp.h").read_text()


def test_names_become_c_identifiers(model_py, tmp_path):
    out = tmp_path / "out"
    assert main([str(model_py), "-o", str(out), "--emit", "header", "--name", "2nd-net.v1"]) == 0
    assert "int32_t m_2nd_net_v1_forward(" in (out / "m_2nd_net_v1.h").read_text()


def test_failure_keeps_an_existing_outdir_as_it_was(model_py, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(model_py), "-o", str(out), "--emit", "ir"]) == 0
    before = (out / "tiny_mlp.kir").read_text()
    (out / "tiny_mlp.kir").write_text(before + "// edited\n")
    capsys.readouterr()
    _one_error_line(capsys, main([str(model_py), "-o", str(out), "--emit", "ir,onnx", "--opset", "99"]),
                    "opset 99 is not supported")
    assert sorted(p.name for p in out.iterdir()) == ["tiny_mlp.kir"]
    assert (out / "tiny_mlp.kir").read_text().endswith("// edited\n")          # ir was staged, never moved in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.py"]       # no staging folder left
