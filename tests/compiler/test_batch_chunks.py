"""Entries of row-separable graphs run large batches in chunks (compiler/batch_chunks.py): the result
equals the reference, and each chunk's rows bitwise equal a call on that chunk alone, in process and
through an artifact; graphs that mix rows run whole."""
import numpy as np
import pytest

from kcompile.compiler import batch_chunks
from kcompile.compiler.artifact import write_artifact
from kcompile.compiler.jit import compile_graph
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime import load
from kcompile.runtime.reference import run

ROWS = 32   # chunk rows forced for these small graphs (bytes per row would allow the maximum)


def _convnet(name):
    rng = np.random.default_rng(0)
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", 9, 9, 2]))
    h = b.relu(b.add(b.conv2d(x, b.param("k", rng.standard_normal((3, 3, 2, 5)).astype(np.float32))),
                     b.param("kb", rng.standard_normal(5).astype(np.float32))))
    h = b.reshape(b.max_pool2d(h, pool_size=(2, 2), strides=(2, 2)), shape=("N", 45))
    y = b.add(b.matmul(h, b.param("w", rng.standard_normal((45, 11)).astype(np.float32))),
              b.param("wb", rng.standard_normal(11).astype(np.float32)))
    return b.build([b.softmax(y), h], ["probs", "features"])


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(batch_chunks, "MAX_ROWS", ROWS)


def _chunk_size(batch):
    return -(-batch // -(-batch // ROWS))


def _check(outs_of, graph, x):
    got = outs_of(x)
    for a, want in zip(got, run(graph, [x])):
        np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5)
    step = _chunk_size(len(x))
    for start in range(0, len(x), step):
        alone = outs_of(x[start:start + step])
        for a, b in zip(got, alone):
            np.testing.assert_array_equal(a[start:start + step], b)


def test_jit_chunks(small_chunks):
    g = _convnet("chunked_jit")
    fn = compile_graph(g)
    x = np.random.default_rng(1).standard_normal((101, 9, 9, 2)).astype(np.float32)   # 4 chunks of 26
    _check(lambda a: fn([np.ascontiguousarray(a)], nthreads=1), g, x)
    np.testing.assert_array_equal(fn([x], nthreads=2)[0], fn([x], nthreads=1)[0])


def test_artifact_chunks(small_chunks, tmp_path):
    g = _convnet("chunked_aot")
    model = load(write_artifact(g, tmp_path / "chunked", "chunked"))
    x = np.random.default_rng(2).standard_normal((70, 9, 9, 2)).astype(np.float32)     # 3 chunks of 24
    _check(lambda a: model.predict(np.ascontiguousarray(a)), g, x)


def test_sparse_artifact_chunks(small_chunks, tmp_path):
    """A sparse convolution (patches + sparse_matmul) and a sparse dense layer are row-wise: their
    graph runs in chunks as the dense one does (unchunked, batch 64 lost the dense path's cache reuse)."""
    from kcompile.passes.sparsify import sparsify
    g = _convnet("chunked_sparse")
    s = sparsify(g, mode="always", lanes=16)
    assert {"patches", "sparse_matmul"} <= {n.op for n in s.nodes} and batch_chunks.row_separable(s)
    model = load(write_artifact(g, tmp_path / "sparse", "chunked_sparse", sparse="always"))
    x = np.random.default_rng(3).standard_normal((70, 9, 9, 2)).astype(np.float32)     # 3 chunks of 24
    _check(lambda a: model.predict(np.ascontiguousarray(a)), g, x)


def _graph_with(build):
    b = GraphBuilder("mixed")
    x = b.input("x", TensorType(["N", 6]))
    return b.build([build(b, x)], ["y"])


@pytest.mark.parametrize("build", [
    lambda b, x: b.softmax(x, axis=0),                                               # normalizes over the batch
    lambda b, x: b.matmul(x, b.input("z", TensorType(["N", 3])), transpose_a=True),  # contracts over the batch
    lambda b, x: b.transpose(b.reshape(x, shape=("N", 2, 3)), perm=(0, 2, 1)),        # not on the op list
], ids=["softmax-axis0", "batch-contraction", "unlisted-op"])
def test_graphs_mixing_rows_run_whole(build):
    assert not batch_chunks.row_separable(_graph_with(build))
    assert batch_chunks.chunk_rows(_graph_with(build), 4) == 0


def test_row_wise_graph_is_separable():
    g = _graph_with(lambda b, x: b.relu(b.matmul(x, b.param("w", np.ones((6, 4), np.float32)))))
    assert batch_chunks.row_separable(g)
    assert batch_chunks.chunk_rows(g, 1 << 30) == batch_chunks.MIN_ROWS
