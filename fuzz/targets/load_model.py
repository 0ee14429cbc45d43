"""kcompile.models.load_model on fuzzed archives.

Input: a mode byte, then either the raw archive bytes (mode 0: exercises the ZIP layer), or the
archive's parts framed by SEP (kcompile.json | config.json | w0.npy | w1.npy ...), which the
harness packs into a valid ZIP and .npz (modes 1-2; mode 2 keeps a valid kcompile.json header), so
mutations reach the JSON config, the layer configs and the .npy headers past the ZIP checksums.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from fuzz.harness import expect_clear_errors, join_parts, split_parts

MAX_LEN = 1 << 15
HEADER = b'{"format": "kcompile-model", "version": 1}'


def pack(data: bytes) -> bytes:
    """The archive file for one fuzz input (see the module docstring)."""
    mode, body = (data[0] % 3, data[1:]) if data else (0, b"")
    if mode == 0:
        return body
    parts = split_parts(body)
    header, config, weights = parts[0], parts[1] if len(parts) > 1 else b"", parts[2:]
    if mode == 2:
        header = HEADER
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_STORED) as z:
        for i, w in enumerate(weights):
            z.writestr(f"w{i}.npy", w)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("kcompile.json", header)
        z.writestr("config.json", config)
        z.writestr("weights.npz", npz.getvalue())
    return out.getvalue()


def unpack(archive: bytes) -> bytes:
    """The framed (mode 1) input equivalent to a saved archive: how seeds are made."""
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        header, config, npz = z.read("kcompile.json"), z.read("config.json"), z.read("weights.npz")
    with zipfile.ZipFile(io.BytesIO(npz)) as z:
        names = sorted(z.namelist(), key=lambda n: int(n[1:-4]))
        weights = [z.read(n) for n in names]
    return b"\x01" + join_parts([header, config, *weights])


def seeds(fixtures: Path) -> list:
    from fuzz.seed_models import saved_models
    out = []
    for path in saved_models(fixtures):
        data = path.read_bytes()
        out += [b"\x00" + data, unpack(data)]
    return out


def setup(fixtures: Path, scratch: Path):
    import kcompile as kc
    path = scratch / "model.keras"

    def one_input(data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(pack(data))
        expect_clear_errors(kc.models.load_model, path)
    return one_input

