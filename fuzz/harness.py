"""What counts as a finding: the one oracle every fuzz target shares, and the framing of inputs.

A target's function may raise a clear project error (the project's error types carry the layer,
op, file or field and what was expected); that is the correct answer to bad input. Any other
exception type, an empty message, MemoryError or RecursionError escapes as a finding, and atheris
reports it with the input that caused it. Hangs and native crashes are caught by libFuzzer itself
(-timeout, signals), and an address-space limit turns an unbounded allocation into MemoryError.
"""
from __future__ import annotations

import resource

from kcompile.cli.errors import CLIError
from kcompile.runtime import NativeRuntimeError

# ValueError covers IRError/ParseError/ShapeError, ArtifactError, SignatureError and the
# loaders' own "not a valid kcompile file" errors. NativeRuntimeError is the native code's own
# status report (e.g. an index out of range), already a clear message naming the entry point.
# NotImplementedError is how the project marks what it visibly does not support (the house rule),
# e.g. "layer 'dense': dtype='float16' is not supported".
EXPECTED = (ValueError, CLIError, NativeRuntimeError, NotImplementedError)
NEVER_EXPECTED = (MemoryError, RecursionError)
ADDRESS_SPACE_LIMIT = 6 << 30    # bytes; Python + numpy + llvmlite + a few artifacts need < 1.5 GiB

# Separates the parts of a framed input (e.g. config.json | w0.npy | w1.npy); also in the dictionary.
SEP = b"\n\x00kc-part\x00\n"


class Finding(Exception):
    """A project error without a message: raised so the fuzzer records the input."""


def expect_clear_errors(fn, *args) -> object:
    """Call fn(*args); swallow clear project errors, let everything else escape as a finding."""
    try:
        return fn(*args)
    except NEVER_EXPECTED:
        raise
    except EXPECTED as e:
        if not str(e).strip():
            raise Finding(f"{type(e).__name__} without a message") from e
        return None


def split_parts(data: bytes, count: int | None = None) -> list:
    parts = data.split(SEP)
    if count is not None:
        parts = (parts + [b""] * count)[:count]
    return parts


def join_parts(parts) -> bytes:
    return SEP.join(parts)


def limit_address_space(limit: int = ADDRESS_SPACE_LIMIT) -> None:
    """An allocation the input declares must fail fast as MemoryError (a finding), not swap the host."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
