"""The kcompile command line (entry point `main`; the console script `kcompile` and `python -m kcompile.cli`)."""
from .compile import _compile_parser, _inspect_parser, _run_parser, main

__all__ = ["main"]
