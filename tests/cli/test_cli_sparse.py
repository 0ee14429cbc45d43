"""`kcompile MODEL -o OUT` on a pruned model: sparse kernels by default, --sparse overrides, the
report and --emit opt show each kernel's choice, and the opt text still parses."""
import numpy as np
import pytest

from kcompile.cli import main
from kcompile.ir import parse_graph, print_graph
from kcompile.runtime import load

MODEL_PY = """
import numpy as np
from kcompile.ir import GraphBuilder, TensorType

def build_model():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(256, 128)).astype(np.float32)
    w0[np.abs(w0) < np.quantile(np.abs(w0), 0.95)] = 0
    b = GraphBuilder("pruned_mlp")
    x = b.input("features", TensorType(["N", 256]))
    with b.location("dense"):
        h = b.relu(b.add(b.matmul(x, b.param("dense/kernel", w0)), b.param("dense/bias", np.ones(128, np.float32))))
    with b.location("head"):
        y = b.matmul(h, b.param("head/kernel", rng.normal(size=(128, 10)).astype(np.float32)))
    return b.build([y], ["logits"])
"""


@pytest.fixture
def model_py(tmp_path):
    path = tmp_path / "pruned.py"
    path.write_text(MODEL_PY)
    return path


def test_auto_is_the_default_and_never_overrides(model_py, tmp_path, capsys):
    assert main([str(model_py), "-o", str(tmp_path / "auto"), "--emit", "so,opt"]) == 0
    report = capsys.readouterr().out
    assert "  sparse: dense/kernel [256x128]: sparse, density 0.050, unstructured, est. " in report
    assert "  sparse: head/kernel [128x10]: dense, density 1.000, no zeros" in report
    assert "  weights: " in report and "bytes (dense: 136,704, " in report
    opt = (tmp_path / "auto" / "pruned_mlp.opt.kir").read_text()
    graph_text = opt[:opt.index("}\n") + 2]
    assert "sparse_matmul(" in graph_text and print_graph(parse_graph(opt)) == graph_text
    assert "// sparsify: dense/kernel [256x128]: sparse" in opt
    assert main([str(model_py), "-o", str(tmp_path / "never"), "--sparse", "never"]) == 0
    assert "sparse:" not in capsys.readouterr().out
    auto, never = load(tmp_path / "auto"), load(tmp_path / "never")
    assert (tmp_path / "never" / "weights.bin").stat().st_size > 5 * (tmp_path / "auto" / "weights.bin").stat().st_size
    x = np.random.default_rng(0).normal(size=(4, 256)).astype(np.float32)
    np.testing.assert_allclose(auto(x), never(x), rtol=1e-5, atol=1e-4)


def test_always_and_refused_combinations(model_py, tmp_path, capsys):
    assert main([str(model_py), "-o", str(tmp_path / "always"), "--sparse", "always", "--emit", "opt"]) == 0
    assert "sparse: head/kernel [128x10]: sparse, density 1.000" in capsys.readouterr().out
    assert main([str(model_py), "-o", str(tmp_path / "x"), "--sparse", "auto", "--emit", "onnx"]) != 0
    assert "--sparse chooses native kernels" in capsys.readouterr().err
    assert main([str(model_py), "-o", str(tmp_path / "x"), "--sparse", "bogus"]) != 0
