"""kcompile.runtime.load on fuzzed artifacts: the manifest and the weights file.

Input: a mode byte, then manifest.json and weights.bin framed by SEP. The compiled libraries of two
real artifacts (forward-only "small" and training "sgd") sit unchanged beside them: code is trusted
only through its checksum, so fuzzing it would test dlopen, not kcompile. Mode bit 0 recomputes the
weights file's checksum in the manifest (when the manifest is a JSON object naming it), so
mutated weights and sizes get past the checksum to the size and interface checks. An artifact
that loads is then called (predict, train_step, get/set_weights) on small valid inputs.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from fuzz.harness import expect_clear_errors, join_parts, split_parts

MAX_LEN = 1 << 14
WEIGHTS = "weights.bin"


def seeds(fixtures: Path) -> list:
    from fuzz.seed_models import artifacts
    out = []
    for path in artifacts(fixtures).values():
        body = join_parts([(path / "manifest.json").read_bytes(), (path / WEIGHTS).read_bytes()])
        out += [b"\x00" + body, b"\x01" + body]
    return out


def _fix_checksum(manifest: bytes, weights: bytes) -> bytes:
    try:
        m = json.loads(manifest)
    except (ValueError, RecursionError):
        return manifest
    if not isinstance(m, dict) or not isinstance(m.get("sha256"), dict):
        return manifest
    code = {m.get("library"), m.get("object")}
    if WEIGHTS in code:          # never vouch for code
        return manifest
    m["sha256"][WEIGHTS] = hashlib.sha256(weights).hexdigest()
    return json.dumps(m).encode()


def setup(fixtures: Path, scratch: Path):
    from kcompile.runtime import load
    from fuzz.seed_models import artifacts
    folder = scratch / "artifact"
    folder.mkdir(exist_ok=True)   # the scratch folder outlives a worker (chunks of a long run)
    for path in artifacts(fixtures).values():
        for lib in path.glob("lib*.so"):
            shutil.copyfile(lib, folder / lib.name)

    def one_input(data: bytes) -> None:
        mode, body = (data[0], data[1:]) if data else (0, b"")
        manifest, weights = split_parts(body, 2)
        if mode & 1:
            manifest = _fix_checksum(manifest, weights)
        (folder / "manifest.json").write_bytes(manifest)
        (folder / WEIGHTS).write_bytes(weights)
        model = expect_clear_errors(load, folder)
        if model is not None:
            _exercise(model)
    return one_input


def _exercise(model) -> None:
    """A loaded artifact must run on valid inputs (its interface matched the code's)."""
    from kcompile.runtime.native import DTYPES
    feeds = [np.zeros([3 if d == "N" else d for d in s["shape"]], DTYPES[s["dtype"]]) for s in model.input_specs]
    model.predict(feeds if len(feeds) > 1 else feeds[0])
    model.set_weights(model.get_weights())
    if "train_step" in model.manifest["entry_points"]:
        model.train_step(np.ones((3, 3), np.float32), np.ones((3, 2), np.float32), learning_rate=0.01)
