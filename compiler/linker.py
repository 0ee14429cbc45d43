"""The system's C compiler driver (when there is one): assembling LLVM's assembly, linking a shared library."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def link_shared(obj: bytes, libraries=(), linker: str | None = "cc") -> bytes | None:
    """The shared library made from `obj`, linked against `libraries` and libm; None without a linker."""
    libs = [f"-l{lib}" for lib in libraries] + ["-lm"]
    return _run(linker, ["-shared"], ("code.o", obj), "code.so", libs, "linking a shared library")


def assemble(asm: str, assembler: str | None = "cc") -> bytes | None:
    """The object file of assembly text `asm`; None without an assembler.

    Assembling is ~50x cheaper than LLVM's code generator, so a compile that wants the assembly
    and the library runs the code generator once, for the assembly, and assembles that."""
    return _run(assembler, ["-c"], ("code.s", asm.encode()), "code.o", [], "assembling the generated code")


def _run(tool: str | None, flags: list, source: tuple, output: str, libs: list, what: str) -> bytes | None:
    cc = shutil.which(tool) if tool else None
    if cc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="kcompile-cc-") as tmp:
        src, out = Path(tmp) / source[0], Path(tmp) / output
        src.write_bytes(source[1])
        cmd = [cc, *flags, "-o", str(out), str(src), *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{what} failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
        return out.read_bytes()
