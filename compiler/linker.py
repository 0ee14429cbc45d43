"""Linking object code into a shared library with the system's C compiler driver (when there is one)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def link_shared(obj: bytes, libraries=(), linker: str | None = "cc") -> bytes | None:
    """The shared library made from `obj`, linked against `libraries` and libm; None without a linker."""
    cc = shutil.which(linker) if linker else None
    if cc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="kcompile-link-") as tmp:
        o, so = Path(tmp) / "code.o", Path(tmp) / "code.so"
        o.write_bytes(obj)
        cmd = [cc, "-shared", "-o", str(so), str(o)] + [f"-l{lib}" for lib in libraries] + ["-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"linking a shared library failed ({' '.join(cmd)}):\n{proc.stderr}")
        return so.read_bytes()
