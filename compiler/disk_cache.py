"""A persistent on-disk cache of compiled code, so a second process compiles nothing.

An entry is the machine code of one Compilation (an ELF object built for the in-process JIT)
plus the interface the loader needs (entry symbols, parameter layout, workspace sizes), stored in
one file named by a digest of everything the code depends on: the printed entry graphs and
options (Compilation.cache_key, which includes the target CPU and its features), the versions of
LLVM and llvmlite, and a digest of the compiler's own source files — so editing the compiler, or
upgrading LLVM, never loads stale code.

Location and switches, like other tools' caches (pip, numba, ccache):
  KCOMPILE_CACHE_DIR       the folder (default $XDG_CACHE_HOME/kcompile, else ~/.cache/kcompile)
  KCOMPILE_DISABLE_CACHE   set to 1 to neither read nor write it
  KCOMPILE_CACHE_MAX_MB    size bound (default 512); least recently used entries go first

Safety: an entry is written to a temporary file and renamed, so concurrent processes see a whole
entry or none; the object's SHA-256 is checked on every read, and a corrupt or unreadable entry is
deleted and compiled again. Because entries are machine code that will run, the folder is used only
when it belongs to the current user and nobody else may write to it.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
import warnings
from functools import lru_cache
from pathlib import Path

from ..ir.atomic_files import left_by_dead_writer, write_atomic

MAGIC = b"KCOBJ1\n"
ENTRY_SUFFIX = ".kco"
DEFAULT_MAX_MB = 512
STALE_TEMP_SECONDS = 3600


def cache_dir() -> Path | None:
    """The cache folder, or None when the cache is disabled."""
    if os.environ.get("KCOMPILE_DISABLE_CACHE", "").strip() not in ("", "0"):
        return None
    explicit = os.environ.get("KCOMPILE_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kcompile"


def max_bytes() -> int:
    raw = os.environ.get("KCOMPILE_CACHE_MAX_MB", "")
    try:
        mb = float(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        raise ValueError(f"KCOMPILE_CACHE_MAX_MB must be a number of megabytes, got {raw!r}") from None
    return int(mb * 2**20)


@lru_cache(maxsize=None)
def toolchain_digest() -> str:
    """LLVM, llvmlite and the compiler's own sources: any change to them makes new keys."""
    import llvmlite
    import llvmlite.binding as llvm
    h = hashlib.sha256(f"llvm {llvm.llvm_version_info} llvmlite {llvmlite.__version__}\n".encode())
    root = Path(__file__).resolve().parent.parent   # the folders that decide the generated code
    for part in ("ir", "passes", "compiler"):
        for path in sorted((root / part).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


class DiskCache:
    """get(key) -> (interface, object bytes) | None; put(key, interface, object bytes)."""

    def __init__(self, root: Path, limit: int | None = None):
        self.root = Path(root)
        self.limit = max_bytes() if limit is None else limit
        self._total: int | None = None     # the entries' size at the last scan (evict)
        self._written = 0                  # bytes this object wrote since

    @classmethod
    def from_environment(cls) -> "DiskCache | None":
        root = cache_dir()
        if root is None:
            return None
        cache = cls(root)
        return cache if cache._usable() else None

    def _usable(self) -> bool:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            st = self.root.stat()
        except OSError as e:
            warnings.warn(f"kcompile: compile cache {self.root} is not usable ({e}); compiling without it",
                          stacklevel=3)
            return False
        if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            warnings.warn(f"kcompile: compile cache {self.root} belongs to another user or others may write "
                          "to it; it holds code that will run, so it is not used (set KCOMPILE_CACHE_DIR)",
                          stacklevel=3)
            return False
        return True

    def path(self, key: str) -> Path:
        return self.root / key[:2] / (key + ENTRY_SUFFIX)

    def get(self, key: str):
        path = self.path(key)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        entry = _decode(data, key)
        if entry is None:                   # corrupt, truncated or another version: compile again
            _unlink(path)
            return None
        try:
            os.utime(path)                  # recently used: evicted last
        except OSError:
            pass
        return entry

    def put(self, key: str, interface: dict, code: bytes) -> None:
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            entry = _encode(key, interface, code)
            # no fsync (a cold compile writes ~30 entries): a read checks the entry's SHA-256 anyway, so
            # an entry a crash truncated is only compiled again
            write_atomic(path, lambda f: f.write(entry), durable=False)
        except OSError as e:                # a full or read-only disk must not fail the compile
            print(f"kcompile: could not write the compile cache entry {path}: {e}", file=sys.stderr)
            return
        self._written += len(entry)
        if self._total is None or self._total + self._written > self.limit:
            self.evict()                    # a scan of the folder: at the first write, then when it may be full

    def entries(self) -> list:
        """(path, size, last use) of every entry; temporary files of dead writers are removed."""
        out, now = [], time.time()
        for path in self.root.glob("??/*"):
            try:
                st = path.stat()
            except OSError:
                continue
            if path.name.startswith("."):     # a write in progress (ir.atomic_files sibling)
                if now - st.st_mtime > STALE_TEMP_SECONDS or left_by_dead_writer(path.name):
                    _unlink(path)
            elif path.suffix == ENTRY_SUFFIX:
                out.append((path, st.st_size, st.st_mtime))
        return out

    def evict(self) -> None:
        """Remove least recently used entries until the cache fits its size bound."""
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        for path, size, _ in entries:
            if total <= self.limit:
                break
            _unlink(path)
            total -= size
        self._total, self._written = total, 0

    def clear(self) -> int:
        """Remove every entry; returns how many."""
        entries = self.entries()
        for path, _, _ in entries:
            _unlink(path)
        return len(entries)


def _encode(key: str, interface: dict, code: bytes) -> bytes:
    header = json.dumps({"key": key, "interface": interface, "nbytes": len(code),
                         "sha256": hashlib.sha256(code).hexdigest()}, sort_keys=True).encode()
    return MAGIC + len(header).to_bytes(8, "little") + header + code


def _decode(data: bytes, key: str):
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        return None
    start = len(MAGIC) + 8
    n = int.from_bytes(data[len(MAGIC):start], "little")
    try:
        header = json.loads(data[start:start + n])
    except ValueError:
        return None
    code = data[start + n:]
    if (not isinstance(header, dict) or header.get("key") != key or header.get("nbytes") != len(code)
            or header.get("sha256") != hashlib.sha256(code).hexdigest()):
        return None
    return header["interface"], code



def _unlink(path) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass
