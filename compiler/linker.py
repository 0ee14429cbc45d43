"""The system's C compiler driver (when there is one): assembling LLVM's assembly, linking a shared library."""
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


def assemble(asm: str, assembler: str | None = "cc") -> bytes | None:
    """The object file of assembly text `asm`; None without an assembler.

    Assembling is ~50x cheaper than LLVM's code generator, so a compile that wants the assembly
    and the library runs the code generator once, for the assembly, and assembles that."""
    cc = shutil.which(assembler) if assembler else None
    if cc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="kcompile-as-") as tmp:
        s, o = Path(tmp) / "code.s", Path(tmp) / "code.o"
        s.write_text(asm)
        cmd = [cc, "-c", "-o", str(o), str(s)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"assembling the generated code failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        return o.read_bytes()
