"""The allocation budget for loading: every size a file declares is checked before anything is allocated.

Saved models, artifacts and .npy/.npz inputs declare their tensor sizes (a config's layer units, an
array header, a manifest); a corrupt or hostile file may declare terabytes. Loaders ask here first,
so an oversized declaration is a LoadBudgetError naming the tensor and the size, never a
MemoryError from inside NumPy. The budget is KCOMPILE_MAX_LOAD_BYTES (bytes, per load) when set,
else this machine's physical memory. It lives in ir because every layer that reads files may import
ir (the runtime, the front end's layers and saving, the CLI).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import tokenize
import zipfile
import zlib

import numpy as np
import numpy.lib.format as npy_format

ENV_VAR = "KCOMPILE_MAX_LOAD_BYTES"
FALLBACK_BYTES = 64 << 30          # where the physical memory cannot be read
_scope: contextvars.ContextVar = contextvars.ContextVar("kcompile_load_scope", default=None)


class LoadBudgetError(ValueError):
    """A file declares more bytes than the loading budget allows (or a size that is not a size)."""


def max_load_bytes() -> int:
    """KCOMPILE_MAX_LOAD_BYTES when set, else the physical memory of this machine."""
    raw = os.environ.get(ENV_VAR)
    if raw is not None:
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value <= 0:
            raise LoadBudgetError(f"{ENV_VAR}={raw!r} must be a positive number of bytes")
        return value
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_BYTES


class _Scope:
    def __init__(self, source: str, limit: int):
        self.source, self.limit, self.used = source, limit, 0


@contextlib.contextmanager
def loading(source: str, limit: int | None = None):
    """Within this block every charge() counts against one budget (the whole load of `source`)."""
    token = _scope.set(_Scope(source, max_load_bytes() if limit is None else int(limit)))
    try:
        yield
    finally:
        _scope.reset(token)


def check_bytes(what: str, nbytes: int, limit: int | None = None) -> None:
    """Refuse one allocation of `nbytes` for `what` above the budget (outside any loading scope)."""
    with loading(what, limit):
        charge_bytes(what, nbytes)


def charge(what: str, shape, dtype) -> None:
    """Within a loading scope: count shape x itemsize against the budget before it is allocated."""
    if _scope.get() is not None:
        charge_bytes(what, np.dtype(dtype).itemsize * _count(what, shape), f" of shape {tuple(shape)}")


def charge_bytes(what: str, nbytes: int, detail: str = "") -> None:
    """Within a loading scope: count `nbytes` for `what` against the budget."""
    scope = _scope.get()
    if scope is None:
        return
    if scope.used + nbytes > scope.limit:
        prefix = "" if what == scope.source else f"{scope.source}: "
        already = f"; with the {scope.used:,} already loaded that exceeds" if scope.used else ", more than"
        raise LoadBudgetError(f"{prefix}{what}{detail} declares {nbytes:,} bytes{already} the loading budget of "
                              f"{scope.limit:,} bytes (set {ENV_VAR} to allow more)")
    scope.used += nbytes


def _count(what: str, shape) -> int:
    n = 1
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise LoadBudgetError(f"{what}: shape {tuple(shape)} is not a list of non-negative integers")
        n *= int(d)
    return n


def read_npy(f, what: str) -> np.ndarray:
    """One .npy array from the file object `f`: header parsed and charged first; no pickle, no objects."""
    try:
        version = npy_format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except (ValueError, SyntaxError, EOFError, TypeError, tokenize.TokenError) as e:   # numpy's header parser
        # raises all five (TypeError: a header dict with bytes keys, {b'descr': ...}, sorted against str)
        raise ValueError(f"{what}: not a valid .npy array ({e})") from None
    if dtype.hasobject:
        raise ValueError(f"{what}: holds Python objects (dtype {dtype}); only plain numeric arrays load (no pickle)")
    with contextlib.ExitStack() as stack:
        if _scope.get() is None:
            stack.enter_context(loading(what))
        charge(what, shape, dtype)
    nbytes = dtype.itemsize * _count(what, shape)
    buf = bytearray(nbytes)
    got = f.readinto(buf) if nbytes else 0
    if got != nbytes:
        raise ValueError(f"{what}: truncated .npy data ({got} of {nbytes} bytes for shape {shape} {dtype})")
    return np.frombuffer(buf, dtype).reshape(shape, order="F" if fortran else "C")


def read_npz(source, what: str) -> dict:
    """Every array of a .npz archive (a path or a file object), each charged against the budget first."""
    try:
        z = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{what}: not a valid .npz archive ({e})") from None
    with z, contextlib.ExitStack() as stack:
        if _scope.get() is None:
            stack.enter_context(loading(what))
        arrays = {}
        for info in z.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                with z.open(info) as member:
                    arrays[name] = read_npy(member, f"{what}, array '{name}'")
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                    RuntimeError) as e:   # RuntimeError: zipfile's "member is encrypted"
                raise ValueError(f"{what}, array '{name}': corrupt archive member ({type(e).__name__}: {e})") from None
        return arrays


def load_npy_or_npz(path, what: str):
    """A .npy file as one array or a .npz archive as a dict of arrays (told apart by their magic bytes)."""
    with open(path, "rb") as f:
        magic = f.read(6)
        f.seek(0)
        if magic.startswith(b"PK"):
            return read_npz(f, what)
        return read_npy(f, what)
