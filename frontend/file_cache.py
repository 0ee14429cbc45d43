"""kc.utils.get_file: fetch a file into Keras's cache (~/.keras/datasets, or $KERAS_HOME) and verify it.

A file is used only once its hash equals the pinned one (SHA-256 for 64 hex digits, else MD5, as Keras's
"auto"); a cached file that does not match is downloaded again, a download goes to a temporary name and
is renamed only after it matched. Offline, the error names the file, the URL and where to place it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request


def cache_folder(cache_dir=None, cache_subdir="datasets") -> str:
    base = cache_dir or os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(base, cache_subdir)


def file_digest(path: str, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _algorithm(file_hash: str, hash_algorithm: str) -> str:
    if hash_algorithm in ("sha256", "md5"):
        return hash_algorithm
    return "sha256" if len(file_hash) == 64 else "md5"


def _matches(path, file_hash, hash_algorithm) -> bool:
    return file_hash is None or file_digest(path, _algorithm(file_hash, hash_algorithm)) == file_hash.lower()


def download(origin: str, target: str):
    """Fetch origin into target (a temporary name: the caller renames it once verified)."""
    urllib.request.urlretrieve(origin, target)


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """The local path of `fname` (downloaded from `origin` when absent or not matching `file_hash`)."""
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    fname = fname or os.path.basename(origin)
    folder = cache_folder(cache_dir, cache_subdir)
    path = os.path.join(folder, fname)   # an absolute fname is used as it is (os.path.join keeps it)
    if force_download or not os.path.exists(path) or not _matches(path, file_hash, hash_algorithm):
        _fetch(origin, path, file_hash, hash_algorithm)
    if untar or extract:
        return _extract(path, archive_format)
    return path


def _fetch(origin, path, file_hash, hash_algorithm):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=os.path.dirname(path) or ".")
    os.close(fd)
    try:
        try:
            download(origin, tmp)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise OSError(f"could not download {os.path.basename(path)} from {origin} ({type(e).__name__}: {e}). "
                          f"On a machine without network access, download that URL elsewhere and place the file "
                          f"at {path}") from None
        if not _matches(tmp, file_hash, hash_algorithm):
            actual = file_digest(tmp, _algorithm(file_hash, hash_algorithm))
            raise ValueError(f"{origin}: the downloaded file's hash {actual} is not the pinned {file_hash}; it was "
                             "discarded (a corrupted or altered download)")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _extract(path, archive_format):
    """Unpack a verified tar archive into a folder beside it, named after it (through a temporary folder,
    renamed when complete); the "data" filter refuses members that would land outside it or are devices."""
    if archive_format not in ("auto", "tar") or not tarfile.is_tarfile(path):
        raise ValueError(f"{path}: only tar archives are extracted by kcompile (archive_format={archive_format!r})")
    folder = path[:-len(".tar.gz")] if path.endswith(".tar.gz") else path + "_extracted"
    if not os.path.isdir(folder):
        tmp = tempfile.mkdtemp(prefix=".extract-", dir=os.path.dirname(folder))
        try:
            with tarfile.open(path) as tar:
                tar.extractall(tmp, filter="data")
            os.replace(tmp, folder)
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)
    return folder
