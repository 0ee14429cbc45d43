"""Atomic replacement of files and folders, and cleanup of what killed runs left behind.

Every writer of kcompile (model.save, ModelCheckpoint, artifacts, the CLI, ONNX export) writes a
sibling first and renames it into place, so the destination always names a complete old or a
complete new version. A folder is swapped in one step where the kernel can (Linux renameat2
RENAME_EXCHANGE); elsewhere the old folder is renamed aside first, and a run killed between the
two renames leaves it aside, where the next run puts it back.

Sibling names say whose they are: ".<name>.kc<kind>-<host>-<pid>-<random>[suffix]". A later write
to the same destination removes those of processes on this host that are no longer alive (and a
folder set aside, when the destination is missing, is restored instead), so nothing a SIGKILL left
stays for good, and nothing of a live writer is touched. Lives in ir: every layer may import ir.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import socket
import zlib
from pathlib import Path

KINDS = ("tmp", "stage", "old")          # a file being written, a folder being built, a folder set aside
MAX_BASE = 120                           # long names are cut in sibling names (file names stop at 255 bytes)
_HOST = format(zlib.crc32(socket.gethostname().encode()), "08x")
_SIBLING = re.compile(r"^\.(?P<base>.+)\.kc(?P<kind>tmp|stage|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]+")
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def sibling(path, kind: str, suffix: str = "") -> Path:
    """A fresh sibling name of `path` for a write in progress (kind: tmp, stage or old)."""
    path = Path(path)
    assert kind in KINDS
    token = secrets.token_hex(4)
    return path.with_name(f".{path.name[:MAX_BASE]}.kc{kind}-{_HOST}-{os.getpid()}-{token}{suffix}")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie counts as dead: it will never finish its write)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def left_by_dead_writer(name: str) -> bool:
    """Whether file name `name` is a sibling that a process of this host, no longer alive, left."""
    m = _SIBLING.match(name)
    return bool(m) and m["host"] == _HOST and not pid_alive(int(m["pid"]))


def clean_stale(path) -> list:
    """Remove the siblings of `path` that dead processes of this host left; restore a folder set aside
    when `path` itself is missing. Returns the paths removed or restored."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    done = []
    for name in names:
        m = _SIBLING.match(name)
        if not m or m["base"] != path.name[:MAX_BASE] or m["host"] != _HOST or pid_alive(int(m["pid"])):
            continue
        stale = folder / name
        with contextlib.suppress(OSError):
            if m["kind"] == "old" and len(path.name) <= MAX_BASE and not os.path.lexists(path):
                os.rename(stale, path)        # killed between the two renames: the old version returns
            elif stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale)
            else:
                stale.unlink()
            done.append(stale)
    return done


def write_atomic(path, write, suffix: str = "", durable: bool = True) -> None:
    """Call write(f) on a temporary file beside `path`, then rename it over `path` (removed on failure),
    so a reader sees the old file or the new one, never half of one.

    durable=False skips the fsync, for files whose readers check their contents anyway (the compile
    cache's checksummed entries): a crash may then lose or truncate the file, never mix two versions."""
    path = Path(os.path.abspath(path))
    clean_stale(path)
    tmp = sibling(path, "tmp", suffix)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def staged_dir(path):
    """Yield a new empty sibling folder; when the block succeeds it replaces `path` in one step (the
    old folder, if any, is deleted afterwards), when it fails it is deleted and `path` is untouched."""
    path = Path(os.path.abspath(path))
    clean_stale(path)
    stage = sibling(path, "stage")
    os.mkdir(stage)          # the usual permissions (umask), unlike mkdtemp's private ones
    try:
        yield stage
        replace_dir(stage, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_dir(new, path) -> None:
    """Make the complete folder `new` appear at `path`; afterwards `new` names nothing or the old one."""
    new, path = Path(new), Path(path)
    if not os.path.lexists(path):
        os.rename(new, path)
        return
    if not path.is_dir() or path.is_symlink():
        raise FileExistsError(f"{path} exists and is not a folder; it is not replaced")
    if _exchange(new, path):
        shutil.rmtree(new)   # now the old version
        return
    aside = sibling(path, "old")
    os.rename(path, aside)
    os.rename(new, path)     # a kill in between: the next clean_stale(path) renames `aside` back
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} into {b}: {os.strerror(err)}")


@functools.lru_cache(maxsize=None)
def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn
