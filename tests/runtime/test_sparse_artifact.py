"""Artifacts of pruned models: compact weights.bin, same outputs, dense get/set_weights that keep the
compiled sparsity pattern, manifests that cannot point the code at other index arrays."""
import json

import numpy as np
import pytest

from kcompile.compiler.artifact import write_artifact
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime import load
from kcompile.runtime.artifact_check import ArtifactError
from kcompile.runtime.reference import run


def pruned_mlp(seed=0, sparsity=0.9):
    """256-128-10 with magnitude-pruned kernels (the head keeps every weight)."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(size=(256, 128)).astype(np.float32)
    w0[np.abs(w0) < np.quantile(np.abs(w0), sparsity)] = 0
    b = GraphBuilder("pruned")
    x = b.input("x", TensorType(["N", 256]))
    with b.location("dense"):
        h = b.relu(b.add(b.matmul(x, b.param("dense/kernel", w0)), b.param("dense/bias", rng.normal(size=128)
                                                                            .astype(np.float32))))
    with b.location("head"):
        y = b.matmul(h, b.param("head/kernel", rng.normal(size=(128, 10)).astype(np.float32)))
    return b.build([y], ["logits"])


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    g = pruned_mlp()
    root = tmp_path_factory.mktemp("sparse_art")
    return g, write_artifact(g, root / "sparse", "pruned"), write_artifact(g, root / "dense", "pruned", sparse="never")


def test_compact_weights_and_same_outputs(artifacts):
    g, sparse, dense = artifacts
    manifest = json.loads((sparse / "manifest.json").read_text())
    assert [s["name"] for s in manifest["sparse_weights"]] == ["dense/kernel"]
    assert (dense / "weights.bin").stat().st_size > 3 * (sparse / "weights.bin").stat().st_size
    m, d = load(sparse), load(dense)
    x = np.random.default_rng(1).normal(size=(9, 256)).astype(np.float32)
    want = run(g, [x])[0]
    np.testing.assert_allclose(m(x), want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(d(x), want, rtol=1e-5, atol=1e-4)
    assert m.weight_names == d.weight_names == ["dense/kernel", "dense/bias", "head/kernel"]
    for a, b in zip(m.get_weights(), d.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_inside_the_pattern(artifacts):
    g, sparse, _ = artifacts
    m = load(sparse)
    w = m.get_weights()[0]
    new = np.where(w != 0, -2 * w, 0).astype(np.float32)
    new.flat[np.flatnonzero(new)[:7]] = 0  # zeroing more is fine too
    m.set_weights({"dense/kernel": new})
    np.testing.assert_array_equal(m.get_weights()[0], new)
    x = np.random.default_rng(2).normal(size=(3, 256)).astype(np.float32)
    np.testing.assert_allclose(m(x), run(g, [x], {"dense/kernel": new})[0], rtol=1e-5, atol=1e-4)
    m.set_weights(m.get_weights())  # the list form round-trips


def test_set_weights_outside_the_pattern_is_refused(artifacts):
    _, sparse, _ = artifacts
    m = load(sparse)
    before = m.get_weights()
    w = before[0].copy()
    i, j = np.argwhere(w == 0)[0]
    w[i, j] = 1.0
    with pytest.raises(ValueError, match=rf"parameter 'dense/kernel' has 1 nonzero weight\(s\) outside the sparsity "
                                         rf"pattern .* \(the first at \[{i}, {j}\]\).*recompile"):
        m.set_weights({"dense/kernel": w, "dense/bias": np.zeros(128, np.float32)})
    with pytest.raises(ValueError, match="'dense/kernel.sparse_index' is part of the compiled sparse storage of "
                                         "'dense/kernel'"):
        m.set_weights({"dense/kernel.sparse_index": np.zeros(3, np.int32)})
    with pytest.raises(ValueError, match=r"parameter 'dense/kernel' expects shape \[256, 128\], got \[128, 256\]"):
        m.set_weights({"dense/kernel": w.T})
    for a, b in zip(m.get_weights(), before):  # nothing was written
        np.testing.assert_array_equal(a, b)


def test_manifest_cannot_redirect_the_index(artifacts, tmp_path):
    import shutil
    _, sparse, _ = artifacts
    copy = tmp_path / "a"
    shutil.copytree(sparse, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sparse_weights"][0]["values"] = "dense/bias"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="must be f32\\[.*\\], got f32\\[128\\]"):
        load(copy)
    manifest["sparse_weights"][0]["values"] = "dense/kernel.sparse_values"
    manifest["sparse_weights"][0]["block"] = [2, 1]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        load(copy)


def test_training_artifacts_stay_dense(tmp_path):
    from artifact_util import sgd_step
    step = sgd_step()
    with pytest.raises(ValueError, match="sparse='always' cannot apply to an artifact with a training step"):
        write_artifact(step, tmp_path / "t", "sgd", train_step=step, sparse="always")


def test_windows_layout_artifact_on_any_host(tmp_path):
    """A graph holding a windows-layout sparse_matmul (the sparsify pass makes them on AVX-512 hosts;
    other CPUs run the kernel's gather fallback): outputs, dense get/set_weights, the pattern kept."""
    from kcompile.ir.ops.sparse import from_dense_windows
    rng = np.random.default_rng(4)
    w = rng.normal(size=(70, 20)).astype(np.float32) * (rng.random((70, 20)) < 0.2)
    b = GraphBuilder("windows")
    x = b.input("x", TensorType(["N", 70]))
    arrays = from_dense_windows(w, (32, 16))
    parts = [b.param(f"k.sparse_{p}", a) for p, a in zip(("values", "index", "offsets"), arrays)]
    y = b.sparse_matmul(x, *parts, block=(32, 16), layout="windows", n=20, weight="k")
    g = b.build([b.relu(y)])
    m = load(write_artifact(g, tmp_path / "win", "win", sparse="never"))
    assert json.loads((tmp_path / "win" / "manifest.json").read_text())["sparse_weights"][0]["layout"] == "windows"
    xs = rng.normal(size=(11, 70)).astype(np.float32)
    np.testing.assert_allclose(m(xs), np.maximum(xs @ w, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(m.get_weights()[0], w)
    new = np.where(w != 0, 3 * w + 1, 0).astype(np.float32)
    m.set_weights({"k": new})
    np.testing.assert_array_equal(m.get_weights()[0], new)
    np.testing.assert_allclose(m(xs), np.maximum(xs @ new, 0), rtol=1e-5, atol=1e-5)
    bad = new.copy()
    bad[np.argwhere(w == 0)[0][0], np.argwhere(w == 0)[0][1]] = 1.0
    with pytest.raises(ValueError, match="parameter 'k' has 1 nonzero weight\\(s\\) outside the sparsity pattern"):
        m.set_weights({"k": bad})
