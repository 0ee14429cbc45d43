"""Artifacts: round trip through runtime.load, a C program, training in place, threads, fallback."""
import shutil
import subprocess
import threading

import numpy as np
import pytest

from kcompile.compiler import artifact, driver
from kcompile.compiler.artifact import write_artifact
from kcompile.ir.f32_panels import parse_packed_name
from kcompile.runtime import load
from kcompile.runtime.reference import run

from artifact_util import sgd_step, small_model

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    g = small_model()
    path = write_artifact(g, tmp_path_factory.mktemp("art") / "small", "small")
    return g, path


def _x(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 7)).astype(np.float32)


def test_round_trip_several_batches(built):
    g, path = built
    model = load(path)
    for n in (1, 5, 33, 0):
        got = model.predict(_x(n, n))
        for a, b in zip(got, run(g, [_x(n, n)])):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    chunked = model.predict(_x(11), batch_size=4)
    for a, b in zip(chunked, run(g, [_x(11)])):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_manifest_describes_the_artifact(built):
    _, path = built
    m = load(path).manifest
    assert m["format_version"] == 1 and m["library"] == "libsmall.so"
    fwd = m["entry_points"]["forward"]
    assert [t["name"] for t in fwd["outputs"]] == ["probs", "total"]
    assert fwd["inputs"] == [{"name": "x", "shape": ["N", 7], "dtype": "f32"}]
    # the kernel also as its panel-packed companion (passes/f32_prepack.py), which get_weights hides
    assert {p["name"] for p in m["params"] if parse_packed_name(p["name"]) is None} == {"dense/kernel", "dense/bias"}
    assert [parse_packed_name(p["name"])[0] for p in m["params"] if parse_packed_name(p["name"])] == ["dense/kernel"]
    assert load(path).weight_names == ["dense/kernel", "dense/bias"]
    assert "avx2" in m["target"]["features"] or m["target"]["features"]
    assert fwd["workspace"]["per_batch"] >= 0 and fwd["workspace"]["static"] >= 0


def test_weights_get_set(built):
    g, path = built
    model = load(path)
    w = model.get_weights()
    assert [a.shape for a in w] == [(7, 5), (5,)]
    np.testing.assert_array_equal(w[0], g.param_values["dense/kernel"])
    model.set_weights({"dense/bias": np.zeros(5, np.float32)})
    want = run(g, [_x(3)], params={"dense/bias": np.zeros(5, np.float32)})
    np.testing.assert_allclose(model.predict(_x(3))[0], want[0], rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="shape"):
        model.set_weights({"dense/bias": np.zeros(4, np.float32)})


C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "small.h"
int main(int argc, char **argv) {
    int64_t n = atoll(argv[3]);
    void *params = aligned_alloc(64, (SMALL_PARAM_BYTES + 63) / 64 * 64 + 64);
    FILE *f = fopen(argv[1], "rb"); fread(params, 1, SMALL_PARAM_BYTES, f); fclose(f);
    float *x = malloc(sizeof(float) * n * 7 + 1);
    f = fopen(argv[2], "rb"); fread(x, sizeof(float), n * 7, f); fclose(f);
    float *probs = malloc(sizeof(float) * n * 5 + 1), *total = malloc(sizeof(float) * n + 1);
    void *ws = aligned_alloc(64, (small_forward_workspace_size(n) + 63) / 64 * 64 + 64);
    const void *inputs[1] = {x};
    void *outputs[2] = {probs, total};
    int status = small_forward(inputs, outputs, params, ws, n, 1);
    for (int64_t i = 0; i < n * 5; i++) printf("%.9g\n", probs[i]);
    for (int64_t i = 0; i < n; i++) printf("%.9g\n", total[i]);
    return status;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_c_program_matches_python(built, tmp_path):
    g, path = built
    (tmp_path / "main.c").write_text(C_MAIN)
    exe = tmp_path / "main"
    subprocess.run(["cc", "-O1", "-o", str(exe), str(tmp_path / "main.c"), f"-I{path}", f"-L{path}", "-lsmall",
                    f"-Wl,-rpath,{path}"], check=True, capture_output=True)
    x = _x(4, 9)
    x.tofile(tmp_path / "x.bin")
    out = subprocess.run([str(exe), str(path / "weights.bin"), str(tmp_path / "x.bin"), "4"], check=True,
                         capture_output=True, text=True).stdout.split()
    values = np.array([float(v) for v in out], np.float32)
    want = run(g, [x])
    np.testing.assert_allclose(values[:20].reshape(4, 5), want[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(values[20:], want[1], rtol=RTOL, atol=ATOL)


def test_train_step_updates_parameters_in_place(tmp_path):
    g = sgd_step()
    path = write_artifact(g.with_param_values({}), tmp_path / "sgd", "sgd", train_step=g)
    model = load(path)
    assert [t["name"] for t in model.manifest["entry_points"]["train_step"]["outputs"]] == ["loss"]
    with pytest.raises(ValueError, match="learning rate"):
        model.train_step(np.zeros((2, 3), np.float32), np.zeros((2, 2), np.float32))
    model.learning_rate = 0.1
    rng = np.random.default_rng(3)
    w = g.param_values["w"]
    for step in range(4):
        x = rng.standard_normal((9, 3)).astype(np.float32)
        y = rng.standard_normal((9, 2)).astype(np.float32)
        loss, new_w = run(g, [x, y, np.float32(0.1), np.int64(step)], params={"w": w})
        got = model.train_step(x, y)
        np.testing.assert_allclose(got, loss, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(model.get_weights()[0], new_w, rtol=RTOL, atol=ATOL)
        w = new_w
    assert model.iterations == 4


def test_concurrent_predict_from_threads(built):
    g, path = built
    model = load(path)
    xs = [_x(8 + k, k) for k in range(6)]
    want = [model.predict(x) for x in xs]
    errors = []

    def worker(k):
        for _ in range(15):
            got = model.predict(xs[k])
            if not all(np.array_equal(a, b) for a, b in zip(got, want[k])):
                errors.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_no_linker_fallback_loads_the_object_in_process(tmp_path):
    g = small_model()
    path = artifact.write_artifact(g, tmp_path / "obj", "small", linker=None)
    assert (path / "small.o").exists() and not list(path.glob("*.so"))
    got = load(path).predict(_x(6))
    for a, b in zip(got, run(g, [_x(6)])):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    g = small_model()
    good = write_artifact(g, tmp_path / "m", "m")
    before = (good / "manifest.json").read_text()

    def broken_link(*args):
        raise RuntimeError("linker exploded")

    monkeypatch.setattr(driver, "link_shared", broken_link)
    with pytest.raises(RuntimeError, match="exploded"):
        write_artifact(g, tmp_path / "m", "m")
    with pytest.raises(RuntimeError, match="exploded"):
        write_artifact(g, tmp_path / "fresh", "fresh")
    assert not (tmp_path / "fresh").exists()
    assert (good / "manifest.json").read_text() == before  # the old artifact is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary directories left


def test_denormal_mode_is_restored_for_python(built):
    _, path = built
    load(path).predict(_x(2))
    tiny = np.float32(1e-38) * np.float32(0.01)
    assert tiny != 0  # numpy still sees denormals after native code ran
