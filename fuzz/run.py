"""Run a fuzz target for a number of executions, wall seconds or CPU minutes; report what it did.

    python -m fuzz.run --target artifact --cpu-minutes 10 [--workdir fuzz/work] [--nice 10]
    python -m fuzz.run --target ir_text --runs 300             # the tests' short run
    python -m fuzz.run --target load_model --replay CRASH_FILE  # reproduce a finding, with traceback

Long runs go in chunks of fresh worker processes (the corpus in WORKDIR/TARGET/corpus carries
the progress over); CPU time is the workers' user+system time from getrusage(RUSAGE_CHILDREN),
executions are libFuzzer's own count. A finding (the input, under WORKDIR/TARGET/findings) stops
the run with exit status 1. Each run appends its figures to WORKDIR/report.jsonl.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fuzz.harness import SEP
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[1]
EXECS = re.compile(rb"stat::number_of_executed_units:\s*(\d+)")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def prepare(target: str, workdir: Path, fixtures: Path | None = None) -> dict:
    """Fixtures (fresh from the current code unless given), the seed corpus and dictionary of one target."""
    from fuzz import seed_models
    base = workdir / target
    dirs = {k: base / k for k in ("fixtures", "corpus", "findings", "scratch")}
    if fixtures is None:
        seed_models.reset(dirs["fixtures"])
    else:
        dirs["fixtures"] = fixtures
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(TARGETS[target])
    seeds = module.seeds(dirs["fixtures"])
    for i, seed in enumerate(seeds):
        (dirs["corpus"] / f"seed-{i:03d}").write_bytes(seed)
    dirs["dict"] = base / "tokens.dict"
    dirs["dict"].write_text("\n".join(_dictionary(seeds)) + "\n")
    dirs["max_len"] = max(module.MAX_LEN, max(map(len, seeds)))
    return dirs


def _dictionary(seeds: list) -> list:
    """libFuzzer dictionary: the part separator and the JSON keys and words found in the seeds."""
    words = {SEP} | {m for s in seeds for m in re.findall(rb'"[A-Za-z_][A-Za-z0-9_./]{1,30}"', s)}
    words |= {b"NaN", b"Infinity", b"-1", b"1e309", b"null", b"true", b"[]", b"{}"}
    return ['"' + "".join(_escape(b) for b in w) + '"' for w in sorted(words)[:400]]


def _escape(byte: int) -> str:
    return chr(byte) if 32 <= byte < 127 and chr(byte) not in '\\"' else f"\\x{byte:02x}"


def worker_cmd(target: str, dirs: dict, extra: list, timeout_s: int) -> list:
    return [sys.executable, "-m", "fuzz.worker", target, str(dirs["fixtures"]), str(dirs["scratch"]),
            str(dirs["corpus"]), f"-artifact_prefix={dirs['findings']}/", f"-timeout={timeout_s}",
            f"-max_len={dirs['max_len']}", f"-dict={dirs['dict']}", "-rss_limit_mb=4096",
            "-print_final_stats=1", *extra]


def run_chunk(cmd: list, log: Path, nice: int) -> tuple:
    with open(log, "ab") as f:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    text = log.read_bytes()
    found = EXECS.findall(text)
    return proc.returncode, int(found[-1]) if found else 0


def fuzz(args) -> int:
    workdir = Path(args.workdir).resolve()
    dirs = prepare(args.target, workdir, args.fixtures and Path(args.fixtures).resolve())
    log = workdir / args.target / "fuzz.log"
    log.unlink(missing_ok=True)
    known = set(p.name for p in dirs["findings"].iterdir())   # earlier runs' findings, kept for replay
    cpu0, wall0 = children_cpu(), time.monotonic()   # after seeding: its compiles are not fuzzing
    execs, chunks, rc, startup_failures = 0, 0, 0, 0
    while True:
        cpu = children_cpu() - cpu0
        if args.runs:
            extra = [f"-runs={args.runs}"] + ([f"-max_total_time={args.seconds}"] if args.seconds else [])
        elif args.cpu_minutes:
            extra = [f"-max_total_time={int(min(args.chunk_seconds, 1.2 * (60 * args.cpu_minutes - cpu) + 10))}"]
        else:
            extra = [f"-max_total_time={args.seconds or 10}"]
        rc, n = run_chunk(worker_cmd(args.target, dirs, extra, args.timeout), log, args.nice)
        if rc != 0 and n == 0 and b"libFuzzer" not in log.read_bytes() and startup_failures < 3:
            startup_failures += 1   # the worker died before fuzzing (say, a file mid-edit): not a finding
            time.sleep(30)
            continue
        execs, chunks = execs + n, chunks + 1
        (workdir / args.target / "progress.json").write_text(json.dumps(   # a long run's figures so far
            {"target": args.target, "executions": execs, "cpu_seconds": round(children_cpu() - cpu0, 1),
             "wall_seconds": round(time.monotonic() - wall0, 1), "chunks": chunks, "last_exit_status": rc}))
        if rc == 0 and args.cpu_minutes:
            log.rename(log.with_suffix(f".{chunks}.log"))   # the next chunk starts a fresh log
        if rc != 0 or not args.cpu_minutes or children_cpu() - cpu0 >= 60 * args.cpu_minutes:
            break
    findings = sorted(p.name for p in dirs["findings"].iterdir() if p.name not in known)
    report = {"target": args.target, "executions": execs, "cpu_seconds": round(children_cpu() - cpu0, 1),
              "wall_seconds": round(time.monotonic() - wall0, 1), "chunks": chunks,
              "corpus": len(list(dirs["corpus"].iterdir())), "findings": findings, "exit_status": rc,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(workdir / "report.jsonl", "a") as f:
        f.write(json.dumps(report) + "\n")
    print(json.dumps(report))
    if rc != 0:
        print(f"FINDING (exit status {rc}): see {log} and {dirs['findings']}", file=sys.stderr)
        sys.stderr.write(log.read_text(errors="replace")[-4000:])
    shutil.rmtree(dirs["scratch"], ignore_errors=True)
    return 1 if rc != 0 or findings else 0


def replay(args) -> int:
    """Run the target once on each given file, without libFuzzer's mutation: shows the traceback."""
    workdir = Path(args.workdir).resolve()
    dirs = prepare(args.target, workdir)
    module = importlib.import_module(TARGETS[args.target])
    one_input = module.setup(dirs["fixtures"], dirs["scratch"])
    for file in args.replay:
        print(f"-- {file}")
        one_input(Path(file).read_bytes())
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, choices=sorted(TARGETS))
    p.add_argument("--cpu-minutes", type=float, help="fuzz until the workers used this much CPU time")
    p.add_argument("--runs", type=int, help="stop after this many executions (one worker)")
    p.add_argument("--seconds", type=int, help="wall-clock cap (with --runs), or the run's length alone")
    p.add_argument("--workdir", default=str(ROOT / "fuzz" / "work"))
    p.add_argument("--chunk-seconds", type=int, default=600, help="wall length of one worker in a long run")
    p.add_argument("--timeout", type=int, default=30, help="seconds one input may take before it is a hang")
    p.add_argument("--nice", type=int, default=0, help="niceness of the workers (long runs on a shared host)")
    p.add_argument("--fixtures", help="reuse this folder of seed models and artifacts (default: build afresh)")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs once, showing any traceback")
    args = p.parse_args(argv)
    return replay(args) if args.replay else fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
