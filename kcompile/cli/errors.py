"""The CLI's error type and how a failure becomes one line on stderr."""
from __future__ import annotations

import sys


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def fail(message: str, status: int = 1) -> int:
    print(f"kcompile: error: {message}", file=sys.stderr)
    return status


def describe(e: Exception) -> str:
    """The one-line message for `e`: a CLIError as it is, anything else prefixed with its type."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if isinstance(e, CLIError) else f"{type(e).__name__}: {text}"
