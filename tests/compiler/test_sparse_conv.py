"""Sparse convolution: pruned conv1d/conv2d kernels through patches + sparse_matmul. The sparsify pass's
graphs mean the same as the dense ones (reference interpreter), native code matches on the host and
the forced AVX2 path at batch 1 and larger over odd sizes, strides, dilations and both paddings;
grouped and causal convolutions stay dense; artifacts keep the kernel's own shape for get/set_weights;
the exported ONNX model runs in onnxruntime."""
import json

import numpy as np
import pytest

from kcompile.compiler.artifact import write_artifact
from kcompile.compiler.jit import compile_graph
from kcompile.compiler.onnx_export import export_onnx
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType, parse_graph, print_graph
from kcompile.passes.sparsify import format_sparsity, pays, sparsify
from kcompile.runtime import load
from kcompile.runtime.reference import run

TOL = dict(rtol=1e-5, atol=1e-4)   # sums of ~50 products of O(1) values, in another order


def pruned(rng, shape, sparsity=0.85):
    w = (0.3 * rng.normal(size=shape)).astype(np.float32)
    w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
    return w


def convnet(seed=0):
    """conv2d (stride 2, same) -> relu -> conv2d (dilation 2, valid) -> reshape to NWC -> conv1d (same, stride 2)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("sparse_convs")
    x = b.input("x", TensorType(["N", 13, 11, 3]))
    with b.location("c1"):
        h = b.relu(b.add(b.conv2d(x, b.param("c1/kernel", pruned(rng, (3, 2, 3, 20))), strides=(2, 1), padding="same"),
                         b.param("c1/bias", rng.normal(size=20).astype(np.float32))))
    with b.location("c2"):
        h = b.conv2d(h, b.param("c2/kernel", pruned(rng, (2, 3, 20, 17))), dilations=(2, 1))
    h = b.reshape(h, shape=("N", 5 * 9, 17))
    with b.location("c3"):
        y = b.conv1d(h, b.param("c3/kernel", pruned(rng, (3, 17, 9))), strides=2, padding="same")
    return b.build([y], ["y"])


@pytest.fixture(scope="module")
def graphs():
    g = convnet()
    return g, sparsify(g, mode="always")


def test_every_convolution_goes_sparse_and_means_the_same(graphs):
    g, s = graphs
    ops = [n.op for n in s.nodes]
    assert ops.count("patches") == 3 and ops.count("sparse_matmul") == 3 and "conv2d" not in ops
    text = print_graph(s)
    assert print_graph(parse_graph(text)) == text
    lines = format_sparsity(s)
    assert "c1/kernel [18x20]: sparse convolution, density 0.1" in lines and "c3/kernel [51x9]" in lines
    x = np.random.default_rng(1).normal(size=(3, 13, 11, 3)).astype(np.float32)
    np.testing.assert_allclose(run(s, [x])[0], run(g, [x])[0], **TOL)


@pytest.mark.parametrize("target", ["host", "avx2"])
def test_native_matches_reference(graphs, target):
    g, s = graphs
    fn = compile_graph(s, target=None if target == "host" else host_target().without("avx512f"))
    rng = np.random.default_rng(2)
    for batch in (1, 7):
        x = rng.normal(size=(batch, 13, 11, 3)).astype(np.float32)
        np.testing.assert_allclose(fn([x])[0], run(g, [x])[0], **TOL)


def test_grouped_and_causal_convolutions_stay_dense():
    rng = np.random.default_rng(3)
    b = GraphBuilder("left_dense")
    x = b.input("x", TensorType(["N", 9, 4]))
    y = b.conv1d(x, b.param("g/kernel", pruned(rng, (3, 2, 6))), groups=2)
    z = b.conv1d(x, b.param("c/kernel", pruned(rng, (3, 4, 6))), padding="causal")
    assert sparsify(b.build([y, z]), mode="always").meta["sparsity"] == ()


def test_auto_follows_the_cost_model(graphs):
    g, _ = graphs
    for d in sparsify(g, mode="auto", lanes=16).meta["sparsity"]:
        assert d.kernel_shape and d.sparse == (d.density > 0 and pays(d.speedup))


def test_artifact_keeps_the_kernel_shape(graphs, tmp_path):
    g, _ = graphs
    path = write_artifact(g, tmp_path / "sparse", "convs", sparse="always")
    spec = {s["name"]: s for s in json.loads((path / "manifest.json").read_text())["sparse_weights"]}
    assert spec["c1/kernel"]["shape"] == [18, 20] and spec["c1/kernel"]["dense_shape"] == [3, 2, 3, 20]
    m = load(path)
    weights = dict(zip(m.weight_names, m.get_weights()))
    np.testing.assert_array_equal(weights["c1/kernel"], g.param_values["c1/kernel"])
    x = np.random.default_rng(4).normal(size=(2, 13, 11, 3)).astype(np.float32)
    np.testing.assert_allclose(m(x), run(g, [x])[0], **TOL)
    new = -weights["c3/kernel"]
    m.set_weights({"c3/kernel": new})
    np.testing.assert_allclose(m(x), run(g, [x], {"c3/kernel": new})[0], **TOL)
    bad = new.copy()
    bad[np.unravel_index(np.flatnonzero(bad == 0)[0], bad.shape)] = 1.0
    with pytest.raises(ValueError, match="parameter 'c3/kernel' has 1 nonzero weight"):
        m.set_weights({"c3/kernel": bad})
    with pytest.raises(ValueError, match=r"parameter 'c3/kernel' expects shape \[3, 17, 9\]"):
        m.set_weights({"c3/kernel": new.reshape(51, 9)})


def test_exported_sparse_convolutions_run_in_onnxruntime(graphs, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    g, s = graphs
    path = export_onnx(s, tmp_path / "convs.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).normal(size=(2, 13, 11, 3)).astype(np.float32)
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, run(g, [x])[0], rtol=1e-4, atol=1e-4)
