"""`kcompile run` (run_command) on fuzzed .npy input files, against two real artifacts.

Input: a mode byte (bit 0: which artifact, "small" with one batched input or "pair" with a batched
and an unbatched one; bit 1: inputs given as NAME=FILE; bits 2-3: --batch-size None, 1, 2 or 5),
then one part per --input, framed by SEP: the .npy bytes, or NAME=.npy bytes when named. A run
that succeeds must have written outputs whose batch matches the inputs'.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from fuzz.harness import Finding, expect_clear_errors, join_parts, split_parts

MAX_LEN = 1 << 13
BATCH_SIZES = (None, 1, 2, 5)


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def seeds(fixtures: Path) -> list:
    from fuzz.seed_models import artifacts
    artifacts(fixtures)
    x = np.linspace(-1, 1, 21, dtype=np.float32).reshape(3, 7)
    a, b = np.ones((4, 4), np.float32), np.arange(4, dtype=np.float32)
    return [b"\x00" + _npy(x), b"\x02" + b"x=" + _npy(x), b"\x04" + _npy(x[:1]), b"\x0c" + _npy(x.astype(np.float64)),
            b"\x01" + join_parts([_npy(a), _npy(b)]), b"\x0b" + join_parts([b"b=" + _npy(b), b"a=" + _npy(a)])]


def setup(fixtures: Path, scratch: Path):
    from kcompile.cli.args import run_parser
    from kcompile.cli.run import run_command
    from fuzz.seed_models import artifacts
    paths = artifacts(fixtures)

    def one_input(data: bytes) -> None:
        mode, body = (data[0], data[1:]) if data else (0, b"")
        argv = [str(paths["pair" if mode & 1 else "small"]), "--output", str(scratch / "out.npz")]
        batch_size = BATCH_SIZES[(mode >> 2) & 3]
        if batch_size is not None:
            argv += ["--batch-size", str(batch_size)]
        for i, part in enumerate(split_parts(body)):
            name, _, npy = part.partition(b"=") if mode & 2 else (b"", b"", part)
            file = scratch / f"in{i}.npy"
            file.write_bytes(npy)
            name = name.decode("utf-8", "replace")
            argv.append(f"--input={name}={file}" if mode & 2 else f"--input={file}")
        (scratch / "out.npz").unlink(missing_ok=True)
        if expect_clear_errors(run_command, run_parser().parse_args(argv)) is None:
            return
        with np.load(scratch / "out.npz") as outs:
            rows = {outs[k].shape[0] for k in outs.files if outs[k].ndim}
        given = {np.load(scratch / f"in{i}.npy").shape[:1] for i in range(len(split_parts(body)))}
        if not any((r,) in given for r in rows):
            raise Finding(f"output rows {rows} match no input's batch {given}")
    return one_input
