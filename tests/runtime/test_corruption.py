"""runtime.load refuses damaged or unsafe artifacts, and calls refuse inputs that do not fit."""
import json
import os
import shutil

import numpy as np
import pytest

from kcompile.compiler.artifact import write_artifact
from kcompile.runtime import ArtifactError, load
from kcompile.runtime.artifact_check import check_cpu_features

from artifact_util import small_model


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_artifact(small_model(), tmp_path_factory.mktemp("pristine") / "small", "small")


@pytest.fixture
def art(pristine, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(pristine, dst)
    return dst


def _edit_manifest(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_pristine_copy_loads(art):
    assert load(art).predict(np.zeros((2, 7), np.float32))[0].shape == (2, 5)


def test_truncated_and_oversized_weights(art):
    data = (art / "weights.bin").read_bytes()
    (art / "weights.bin").write_bytes(data[:-4])
    with pytest.raises(ArtifactError, match="truncated"):
        load(art)
    (art / "weights.bin").write_bytes(data + b"\0" * 8)
    with pytest.raises(ArtifactError, match="oversized"):
        load(art)


def test_flipped_weight_byte_fails_checksum(art):
    data = bytearray((art / "weights.bin").read_bytes())
    data[3] ^= 0xFF
    (art / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load(art)


def test_corrupt_library_fails_checksum(art):
    with open(art / "libsmall.so", "r+b") as f:
        f.seek(100)
        f.write(b"\xde\xad\xbe\xef")
    with pytest.raises(ArtifactError, match="checksum"):
        load(art)


def test_bad_manifest_json_and_version(art):
    (art / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="JSON"):
        load(art)


def test_unsupported_format_version(art):
    _edit_manifest(art, lambda m: m.update(format_version=99))
    with pytest.raises(ArtifactError, match="format_version"):
        load(art)


@pytest.mark.parametrize("bad", ["../weights.bin", "/etc/passwd", "sub/weights.bin", ".."])
def test_paths_escaping_the_directory(art, bad):
    _edit_manifest(art, lambda m: m["weights"].update(file=bad))
    with pytest.raises(ArtifactError, match="file name"):
        load(art)


def test_symlinked_files_are_refused(art, tmp_path):
    outside = tmp_path / "outside.bin"
    shutil.copy(art / "weights.bin", outside)
    os.remove(art / "weights.bin")
    os.symlink(outside, art / "weights.bin")
    with pytest.raises(ArtifactError, match="symlink"):
        load(art)


def test_declared_sizes_beyond_the_data(art):
    _edit_manifest(art, lambda m: m["params"][0].update(offset=10 ** 6))
    with pytest.raises(ArtifactError, match="beyond"):
        load(art)


def test_sizes_that_overflow(art):
    _edit_manifest(art, lambda m: m["params"][0].update(shape=[2 ** 62, 2 ** 62], nbytes=2 ** 63))
    with pytest.raises(ArtifactError, match="more than|integer"):
        load(art)


def test_huge_workspace_formula(art):
    _edit_manifest(art, lambda m: m["entry_points"]["forward"]["workspace"].update(per_batch=2 ** 60))
    with pytest.raises(ArtifactError, match="per_batch"):
        load(art)


def test_parameter_size_must_match_its_shape(art):
    _edit_manifest(art, lambda m: m["params"][0].update(nbytes=m["params"][0]["nbytes"] + 4))
    with pytest.raises(ArtifactError, match="need"):
        load(art)


def test_manifest_that_lies_about_the_code_is_refused(art):
    # consistent on its own (sizes, checksums), but not what the library was compiled for
    _edit_manifest(art, lambda m: m["entry_points"]["forward"]["inputs"][0].update(shape=["N", 3]))
    with pytest.raises(ArtifactError, match="interface"):
        load(art)


def test_missing_cpu_features_are_refused(art):
    _edit_manifest(art, lambda m: m["target"]["features"].append("fma4"))
    flags = {"sse2", "avx", "avx2", "fma"}
    with pytest.raises(ArtifactError, match="fma4"):
        check_cpu_features({"triple": "x86_64-unknown-linux-gnu", "cpu": "x", "features": ["avx2", "fma4"]}, flags)
    if "fma4" not in open("/proc/cpuinfo").read():
        with pytest.raises(ArtifactError, match="lacks"):
            load(art)


def test_other_architecture_is_refused():
    with pytest.raises(ArtifactError, match="built for"):
        check_cpu_features({"triple": "riscv64-unknown-linux-gnu", "features": []}, set())


# -- inputs at the boundary --------------------------------------------------------------
def test_wrong_inputs_are_refused_or_converted(pristine):
    model = load(pristine)
    with pytest.raises(ValueError, match="rank"):
        model.predict(np.zeros((2, 7, 1), np.float32))
    with pytest.raises(ValueError, match="dimension 1"):
        model.predict(np.zeros((2, 6), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        model.predict(np.zeros((2, 7), np.complex64))
    with pytest.raises(TypeError, match="dtype"):
        model.predict(np.full((2, 7), "a"))
    x64 = np.random.default_rng(0).standard_normal((3, 7))
    np.testing.assert_allclose(model.predict(x64)[0], model.predict(x64.astype(np.float32))[0])
    strided = np.asfortranarray(x64.astype(np.float32))
    np.testing.assert_array_equal(model.predict(strided)[0], model.predict(x64.astype(np.float32))[0])
    with pytest.raises(ValueError, match="inputs"):
        model._run("forward", [x64, x64])


def test_train_step_missing_is_a_clear_error(pristine):
    with pytest.raises(ArtifactError, match="no train_step"):
        load(pristine).train_step(np.zeros((1, 7), np.float32))
