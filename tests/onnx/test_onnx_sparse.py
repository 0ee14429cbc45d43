"""A pruned model exports as dense kernels with zeros, before or after the sparsify pass, and
onnxruntime reproduces the reference interpreter."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from kcompile.compiler.onnx_export import export_onnx
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes.sparsify import sparsify
from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")


def _pruned_mlp():
    rng = np.random.default_rng(5)
    b = GraphBuilder("pruned_mlp")
    h = b.input("x", TensorType(["N", 48]))
    for i, (k, n, block) in enumerate([(48, 32, (1, 1)), (32, 16, (1, 8))]):
        w = rng.normal(size=(k, n)).astype(np.float32)
        keep = rng.random((k // block[0], n // block[1])) < 0.2
        w *= np.repeat(np.repeat(keep, block[0], 0), block[1], 1)
        with b.location(f"dense_{i}"):
            h = b.relu(b.add(b.matmul(h, b.param(f"dense_{i}/kernel", w)),
                             b.param(f"dense_{i}/bias", rng.normal(size=n).astype(np.float32))))
    return b.build([h], ["y"])


@pytest.mark.parametrize("sparse", [False, True], ids=["traced", "sparsified"])
def test_pruned_model_matches_onnxruntime(sparse, tmp_path):
    g = _pruned_mlp()
    exported = sparsify(g, mode="always") if sparse else g
    assert ("sparse_matmul" in [n.op for n in exported.nodes]) == sparse
    path = export_onnx(exported, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    kernels = [numpy_helper.to_array(t) for t in model.graph.initializer if len(t.dims) == 2]
    assert any(np.array_equal(a, g.param_values["dense_0/kernel"]) for a in kernels)  # zeros written out
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 6):
        x = np.random.default_rng(batch).normal(size=(batch, 48)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], run(g, [x])[0], rtol=1e-5, atol=1e-5)
