"""Every row of the bad-input table (reliability_cases.py) raises its error type with a message that
names the problem: no crash, no silent result, no stray files. Rows that may reach native code run
together in one subprocess, so a crash fails those rows, not the session."""
import json
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from reliability_cases import CASES, Ctx, run_case

HERE = Path(__file__).resolve().parent
WORKER_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return Ctx(tmp_path_factory.mktemp("bad_inputs"))


def run_isolated(tmp: Path, ids: list, env: dict | None = None):
    """Run rows in one worker subprocess: (id -> (raised, message), why rows are missing)."""
    proc = subprocess.run([sys.executable, str(HERE / "reliability_worker.py"), str(tmp), *ids],
                          capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=env)
    results, running = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if "start" in row:
            running = row["start"]
        else:
            results[row["id"]] = (row["raised"], row["message"])
            running = None
    crash = f"the worker died (status {proc.returncode}) while running row {running!r}: {proc.stderr[-2000:]}"
    return results, crash


@pytest.fixture(scope="module")
def isolated_results(tmp_path_factory):
    """All isolated rows, run once in one subprocess."""
    tmp = tmp_path_factory.mktemp("bad_inputs_isolated")
    results, crash = run_isolated(tmp, [c.id for c in CASES if c.isolate])
    return results, crash, tmp


def _check(c, result, leftovers_in: Path):
    assert result is not None, f"{c.id}: raised nothing (expected {c.error.__name__})"
    raised, message = result
    assert c.error.__name__ in raised, f"{c.id}: raised {raised[0]} ({message}), expected {c.error.__name__}"
    assert re.search(c.match, message, re.S), f"{c.id}: message does not name the problem: {message!r}"
    stray = [p.name for p in leftovers_in.rglob(".*.kc*")]
    assert not stray, f"{c.id}: left temporary files behind: {stray}"


@pytest.mark.parametrize("c", [c for c in CASES if not c.isolate], ids=lambda c: f"{c.area}-{c.id}")
def test_bad_input_in_process(c, ctx):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_case(c, ctx)
    _check(c, result, ctx.tmp)


@pytest.mark.parametrize("c", [c for c in CASES if c.isolate], ids=lambda c: f"{c.area}-{c.id}")
def test_bad_input_in_subprocess(c, isolated_results):
    results, crash, tmp = isolated_results
    assert c.id in results, crash
    _check(c, results[c.id], tmp)


def test_the_table_covers_every_area():
    counts = Counter(c.area for c in CASES)
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert set(counts) == {"frontend", "ir", "saving", "artifact", "onnx", "cli"}, counts


def test_a_native_crash_fails_its_rows_and_names_the_one_running(tmp_path):
    ids = [c.id for c in CASES if c.area == "ir"][:3]
    results, crash = run_isolated(tmp_path, ids, env=dict(os.environ, KCOMPILE_TEST_ABORT_AT=ids[1]))
    assert list(results) == ids[:1]
    assert f"row {ids[1]!r}" in crash and "status -6" in crash
