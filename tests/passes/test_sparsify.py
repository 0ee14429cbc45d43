"""The sparsify pass: what it measures and chooses per kernel, and that its graphs mean the same."""
import numpy as np
import pytest

from kcompile.ir import GraphBuilder, TensorType, parse_graph, print_graph
from kcompile.passes import PassError, PassManager
from kcompile.passes.sparsify import format_sparsity, sparsify
from kcompile.runtime.reference import run


def magnitude_pruned(rng, shape, sparsity):
    w = rng.normal(size=shape).astype(np.float32)
    w[np.abs(w) < np.quantile(np.abs(w), sparsity)] = 0
    return w


def mlp(kernels, name="mlp", rows_per_item=()):
    """x -> dense layers (kernel, bias, relu) over the given kernels."""
    b = GraphBuilder(name)
    h = b.input("x", TensorType(["N", *rows_per_item, kernels[0].shape[0]]))
    for i, w in enumerate(kernels):
        with b.location(f"dense_{i}"):
            h = b.relu(b.add(b.matmul(h, b.param(f"dense_{i}/kernel", w)),
                             b.param(f"dense_{i}/bias", np.full(w.shape[1], 0.1, np.float32))))
    return b.build([h])


def decisions(g):
    return {d.param: d for d in g.meta["sparsity"]}


def test_auto_chooses_by_density_and_keeps_meaning():
    rng = np.random.default_rng(0)
    g = mlp([magnitude_pruned(rng, (256, 128), 0.95), rng.normal(size=(128, 64)).astype(np.float32)])
    s = sparsify(g)
    d = decisions(s)
    assert d["dense_0/kernel"].sparse and d["dense_0/kernel"].structure == "unstructured"
    assert abs(d["dense_0/kernel"].density - 0.05) < 0.001 and d["dense_0/kernel"].speedup[0] > 1.2
    assert not d["dense_1/kernel"].sparse and d["dense_1/kernel"].structure == "no zeros"
    assert [n.op for n in s.nodes].count("sparse_matmul") == 1
    assert "dense_0/kernel" not in s.param_names and "dense_0/kernel.sparse_values" in s.param_names
    node = next(n for n in s.nodes if n.op == "sparse_matmul")
    assert node.attrs["weight"] == "dense_0/kernel" and node.attrs["density"] == d["dense_0/kernel"].density
    x = rng.normal(size=(5, 256)).astype(np.float32)
    assert np.array_equal(run(s, [x])[0], run(g, [x])[0])
    text = print_graph(s)
    assert print_graph(parse_graph(text)) == text
    assert "sparse_matmul(" in text and 'structure="unstructured"' in text
    assert "// sparsify: dense_0/kernel [256x128]: sparse, density 0.050" in format_sparsity(s)


def test_structures_are_recognized():
    rng = np.random.default_rng(1)
    blocks = rng.normal(size=(128, 256)).astype(np.float32) * np.repeat(rng.random((128, 16)) < 0.1, 16, axis=1)
    w24 = rng.normal(size=(32, 4, 64)).astype(np.float32)
    keep = np.argsort(-np.abs(w24), axis=1)[:, :2]
    mask = np.zeros_like(w24, bool)
    np.put_along_axis(mask, keep, True, axis=1)
    neurons = magnitude_pruned(rng, (64, 32), 0.5)
    neurons[:, :5] = 0
    s = sparsify(mlp([blocks, magnitude_pruned(rng, (256, 128), 0.9), (w24 * mask).reshape(128, 64)]),
                 mode="always")
    d = decisions(s)
    assert d["dense_0/kernel"].structure == "block 1x16" and d["dense_0/kernel"].block == (1, 16)
    assert d["dense_2/kernel"].structure == "2:4" and d["dense_2/kernel"].block == (1, 1)  # 1x16 blocks: half zeros
    assert "5 empty outputs" in decisions(sparsify(mlp([neurons]), mode="always"))["dense_0/kernel"].structure
    assert d["dense_0/kernel"].sparse_bytes < d["dense_0/kernel"].dense_bytes / 8


def test_modes_and_what_is_left_dense():
    rng = np.random.default_rng(2)
    g = mlp([magnitude_pruned(rng, (64, 32), 0.5), np.zeros((32, 16), np.float32)])
    assert sparsify(g, mode="never") is g
    auto = decisions(sparsify(g))
    assert not auto["dense_1/kernel"].sparse  # an all-zero kernel is a placeholder: auto keeps it
    always = sparsify(g, mode="always")
    assert all(d.sparse for d in decisions(always).values())
    x = rng.normal(size=(3, 64)).astype(np.float32)
    assert np.array_equal(run(always, [x])[0], run(g, [x])[0])
    with pytest.raises(PassError, match="mode must be one of auto, always, never, got 'sometimes'"):
        sparsify(g, mode="sometimes")


def test_rows_per_item_and_ineligible_uses():
    rng = np.random.default_rng(3)
    w = magnitude_pruned(rng, (64, 32), 0.9)
    d = decisions(sparsify(mlp([w], rows_per_item=(5,)), mode="always"))["dense_0/kernel"]
    assert d.rows == (5, 320)
    # a kernel also read elsewhere, used transposed, or updated by a training step stays dense
    b = GraphBuilder("other_uses")
    x = b.input("x", TensorType(["N", 64]))
    k1, k2 = b.param("k1", w), b.param("k2", w.T.copy())
    y = b.add(b.matmul(x, k1), b.reduce_sum(k1, axes=[0]))
    z = b.matmul(b.input("x2", TensorType(["N", 64])), k2, transpose_b=True)
    g = b.build([y, z])
    assert sparsify(g, mode="always").meta["sparsity"] == ()
    trained = mlp([w])
    trained.meta["param_updates"] = {"dense_0/kernel:new": "dense_0/kernel"}
    assert sparsify(trained, mode="always").meta["sparsity"] == ()


def test_in_a_pipeline_with_fusion():
    rng = np.random.default_rng(4)
    g = mlp([magnitude_pruned(rng, (128, 64), 0.9)])
    planned, _ = PassManager("canonicalize,sparsify{mode=always,lanes=16},fuse,plan-memory", verify_each=True).run(g)
    fused = planned.nodes[0]  # the sparse kernel anchors an epilogue: bias add and relu in its registers
    assert fused.op == "fused" and fused.attrs["kind"] == "epilogue" and fused.attrs["in_kernel"] == 2
    assert [n.op for n in fused.attrs["body"].nodes] == ["sparse_matmul", "add", "relu"]
    assert planned.meta["sparsity"][0].sparse


def test_windows_layout_on_16_lane_targets():
    """Unstructured kernels take the windows layout where vectors hold 16 f32 (AVX-512): batch 1 then
    runs vectorized across outputs; 8-lane targets keep CSC. The graph still means the same."""
    rng = np.random.default_rng(5)
    g = mlp([magnitude_pruned(rng, (784, 512), 0.9), rng.normal(size=(512, 10)).astype(np.float32)])
    wide, narrow = decisions(sparsify(g, lanes=16)), decisions(sparsify(g, lanes=8))
    d = wide["dense_0/kernel"]
    assert d.sparse and d.layout == "windows" and d.block == (32, 16) and d.structure == "unstructured"
    assert d.speedup[0] >= 3 and d.sparse_bytes < d.dense_bytes / 3
    assert "windows of 32 inputs x 16 outputs" in d.line()
    assert narrow["dense_0/kernel"].layout == "blocks" and narrow["dense_0/kernel"].block == (1, 1)
    s = sparsify(g, lanes=16)
    node = next(n for n in s.nodes if n.op == "sparse_matmul")
    assert node.attrs["layout"] == "windows" and node.attrs["n"] == 512
    assert s.param_values["dense_0/kernel.sparse_index"].dtype == np.uint8
    x = rng.normal(size=(3, 784)).astype(np.float32)
    np.testing.assert_allclose(run(s, [x])[0], run(g, [x])[0], rtol=1e-5, atol=1e-5)
    text = print_graph(s)
    assert 'layout="windows"' in text and print_graph(parse_graph(text)) == text
