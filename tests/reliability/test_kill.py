"""SIGKILL at random points of writing an artifact, a saved model, an ONNX file and a CLI OUTDIR: each
destination holds the complete old or the complete new version, and the next write leaves nothing
stale. Plus the rename-aside fallback (no renameat2) killed between its two renames."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
KILLS = 6
MAX_DELAY_S = 0.4


def _read(proc) -> dict:
    line = proc.stdout.readline()
    assert line, f"kill_writer ended: {proc.stderr.read()[-2000:]}"
    return json.loads(line)


def _send(proc, cmd: str) -> dict:
    proc.stdin.write(cmd + "\n")
    proc.stdin.flush()
    return _read(proc)


def _artifact_version(art: Path) -> float:
    """The version (kernel value) of a complete, self-consistent artifact folder."""
    from kcompile.runtime.artifact_check import validate_manifest
    import hashlib
    manifest = validate_manifest(json.loads((art / "manifest.json").read_text()))
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((art / name).read_bytes()).hexdigest() == digest, f"{name} is from another version"
    kernel = next(p for p in manifest["params"] if p["name"] == "dense/kernel")
    raw = (art / "weights.bin").read_bytes()[kernel["offset"]:kernel["offset"] + kernel["nbytes"]]
    values = set(np.frombuffer(raw, "<f4").tolist())
    assert len(values) == 1, values
    return values.pop()


def _model_version(path: Path) -> float:
    import kcompile as kc
    values = set(kc.models.load_model(path).get_weights()[0].ravel().tolist())
    assert len(values) == 1, values
    return values.pop()


def _onnx_version(path: Path) -> float:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    kernels = [numpy_helper.to_array(t) for t in model.graph.initializer if t.dims == [3, 2]]
    values = set(kernels[0].ravel().tolist())
    assert len(values) == 1, values
    return values.pop()


def _versions(out: Path) -> tuple:
    cli_files = sorted(p.name for p in (out / "cliout").iterdir())
    assert cli_files == ["libtiny.so", "manifest.json", "notes.txt", "tiny.h", "tiny.kir", "weights.bin"], cli_files
    return (_artifact_version(out / "artifact"), _model_version(out / "model.keras"), _onnx_version(out / "model.onnx"),
            _artifact_version(out / "cliout"))


def _stale(out: Path) -> list:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def test_kill_at_random_points_leaves_old_or_new(tmp_path):
    out = tmp_path / "out"
    (out / "cliout").mkdir(parents=True)
    (out / "cliout" / "notes.txt").write_text("the user's")   # survives every recompile
    proc = subprocess.Popen([sys.executable, str(HERE / "kill_writer.py"), str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _read(proc).get("ready")
        _send(proc, "final")   # the "old" versions every kill starts from
        rng = random.Random(11)
        for _ in range(KILLS):
            pid = _send(proc, "fork")["pid"]
            time.sleep(rng.uniform(0.05, MAX_DELAY_S))
            os.kill(pid, signal.SIGKILL)
            _send(proc, "reap")
            versions = _versions(out)
            assert set(versions) <= {1.0, 2.0}, versions
        _send(proc, "final")   # the next run: complete, and it cleans up after the killed ones
        assert _versions(out) == (1.0,) * 4
        assert _stale(out) == [], "a killed write's leftovers survived the next run"
        assert sorted(p.name for p in out.iterdir()) == ["artifact", "cliout", "model.keras", "model.onnx"]
    finally:
        proc.kill()
        proc.wait()


FALLBACK_CHILD = r"""
import os, signal, sys
from pathlib import Path
from kcompile.ir import atomic_files

dest = Path(sys.argv[1])
atomic_files._exchange = lambda a, b: False          # a filesystem without renameat2
real_rename = os.rename
calls = []
def rename_then_die(a, b):
    real_rename(a, b)
    calls.append(b)
    if len(calls) == 1:                               # the old folder is aside, the new one not yet in
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename_then_die
with atomic_files.staged_dir(dest) as stage:
    (stage / "version").write_text("new")
"""


def test_fallback_killed_between_renames_is_restored_by_the_next_run(tmp_path):
    from kcompile.ir.atomic_files import clean_stale, staged_dir
    dest = tmp_path / "artifact"
    dest.mkdir()
    (dest / "version").write_text("old")
    proc = subprocess.run([sys.executable, "-c", FALLBACK_CHILD, str(dest)], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not dest.exists()                          # the one window the fallback has
    assert len(_stale(tmp_path)) == 2                 # the old folder aside, the new one staged
    restored = clean_stale(dest)                      # what the next write does first
    assert (dest / "version").read_text() == "old" and len(restored) == 2
    assert _stale(tmp_path) == []
    with staged_dir(dest) as stage:
        (stage / "version").write_text("new")
    assert (dest / "version").read_text() == "new" and _stale(tmp_path) == []


@pytest.mark.parametrize("kind", ["tmp", "stage"])
def test_cleanup_spares_live_writers_other_hosts_and_strangers(tmp_path, kind):
    from kcompile.ir import atomic_files
    dest = tmp_path / "model.keras"
    mine_alive = atomic_files.sibling(dest, kind)                  # this process: alive
    other_host = tmp_path / f".model.keras.kc{kind}-00000000-1-abcd"
    stranger = tmp_path / ".model.keras.tmp-xyz"                   # not named by us
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_sibling = tmp_path / mine_alive.name.replace(f"-{os.getpid()}-", f"-{dead.stdout.strip()}-")
    for p in (mine_alive, other_host, stranger, dead_sibling):
        p.mkdir() if kind == "stage" else p.write_text("x")
    assert atomic_files.clean_stale(dest) == [dead_sibling]
    assert all(p.exists() for p in (mine_alive, other_host, stranger)) and not dead_sibling.exists()


def test_cli_recompile_swaps_outdir_and_keeps_foreign_files(tmp_path):
    """kcompile MODEL -o OUTDIR over an existing OUTDIR: one swap; files it does not write survive."""
    import kcompile as kc
    from kcompile.cli import main
    from kcompile.ir import atomic_files
    m = kc.Sequential([kc.Input((3,)), kc.layers.Dense(2)], name="tiny")
    m.save(tmp_path / "m.keras")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    stale = atomic_files.sibling(out, "stage").with_name(
        atomic_files.sibling(out, "stage").name.replace(f"-{os.getpid()}-", "-999999999-"))
    stale.mkdir()   # a killed compile's staging folder (pid 999999999 runs nowhere)
    assert main([str(tmp_path / "m.keras"), "-o", str(out), "--emit", "ir"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "tiny.kir"]
    assert _stale(tmp_path) == []
