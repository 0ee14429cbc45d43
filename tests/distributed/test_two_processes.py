"""Data-parallel fit under `mpiexec -n 2` (dp_worker.py), compared with one process on the same global batches."""
import ast
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("dp_worker.py")


def _mpiexec():
    try:
        import mpi4py.MPI  # noqa: F401
    except ImportError as e:
        pytest.skip(f"mpi4py with an MPI library is needed for two-process runs ({e}); "
                    'pip install "kcompile[distributed]"')
    beside = Path(sys.executable).with_name("mpiexec")
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec on PATH (the mpich wheel provides one: pip install mpich)")
    return found


def run_two(scenario, outdir, timeout_s=None, limit=240):
    env = dict(os.environ, KCOMPILE_NUM_THREADS="1")
    if timeout_s is not None:
        env["KCOMPILE_DIST_TIMEOUT"] = str(timeout_s)
    start = time.monotonic()
    proc = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(WORKER), scenario, str(outdir)], env=env,
                          capture_output=True, text=True, timeout=limit)
    return proc, time.monotonic() - start


def _load(path):
    data = np.load(path)
    weights = [data[f"arr_{i}"] for i in range(len(data.files) - ("history" in data.files))]
    return weights, ast.literal_eval(str(data["history"])) if "history" in data.files else None


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    proc, _ = run_two("train", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dp0, history0 = _load(tmp_path / "dp_rank0.npz")
    dp1, history1 = _load(tmp_path / "dp_rank1.npz")
    single, history = _load(tmp_path / "single.npz")
    for a, b, c in zip(dp0, dp1, single):
        np.testing.assert_array_equal(a, b)          # the ranks hold the very same weights
        np.testing.assert_allclose(a, c, atol=1e-5)  # and the one-process result (summation order aside)
    assert history0 == history1
    assert history0.keys() == history.keys()
    for key in history:   # global loss (uneven last batch, a batch of 1 over 2 processes) and metrics
        np.testing.assert_allclose(history0[key], history[key], atol=1e-5, err_msg=key)
    bn0, _ = _load(tmp_path / "bn_rank0.npz")
    bn1, _ = _load(tmp_path / "bn_rank1.npz")
    for a, b in zip(bn0, bn1):   # local BatchNormalization: moving statistics averaged, shuffled order shared
        np.testing.assert_array_equal(a, b)
    assert (tmp_path / "log_rank0.csv").exists() and not (tmp_path / "log_rank1.csv").exists()
    sync0, sync_history0 = _load(tmp_path / "sync_rank0.npz")
    sync1, _ = _load(tmp_path / "sync_rank1.npz")
    sync_single, sync_history = _load(tmp_path / "sync_single.npz")
    for a, b, c in zip(sync0, sync1, sync_single):   # synchronized BatchNormalization: the global batch's statistics
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, atol=1e-5)
    np.testing.assert_allclose(sync_history0["loss"], sync_history["loss"], rtol=1e-5)


def test_different_models_on_the_ranks_are_reported_not_hung(tmp_path):
    proc, _ = run_two("mismatch", tmp_path, limit=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in (0, 1):
        assert f"rank {rank} refused: DistributedError" in proc.stdout, proc.stdout + proc.stderr
    assert "model structure" in proc.stdout


def test_a_rank_that_stops_mid_epoch_makes_the_others_fail_within_the_timeout(tmp_path):
    proc, elapsed = run_two("hang", tmp_path, timeout_s=2, limit=120)
    assert proc.returncode != 0
    errors = proc.stderr + "".join(p.read_text() for p in tmp_path.glob("error_rank*.txt"))
    assert "did not complete within 2 s" in errors, proc.stdout + errors
    assert "rank 0 finished" not in proc.stdout
    assert elapsed < 55   # rank 1 sleeps 60 s: the job was aborted, not waited for


def test_a_rank_that_dies_mid_epoch_ends_the_job(tmp_path):
    proc, elapsed = run_two("dies", tmp_path, timeout_s=5, limit=120)
    assert proc.returncode != 0
    assert "rank 0 finished" not in proc.stdout, proc.stdout + proc.stderr
    assert elapsed < 60
