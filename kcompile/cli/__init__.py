"""The kcompile command line: compile a model into artifacts, run an artifact, inspect one.

    kcompile MODEL -o OUTDIR [--emit KIND ...]     compile (MODEL: a saved model or a .py file)
    kcompile run ARTIFACT --input x.npy [--output y.npy]
    kcompile inspect ARTIFACT

Every error is one line on stderr and a non-zero exit status (set KCOMPILE_TRACEBACK=1 for the
traceback). Outputs are staged in a folder beside OUTDIR that replaces it in one step only once every
requested kind was produced, so a failed or killed compile leaves the old OUTDIR or the new one.

Modules: args (parsers and help), compile (the compile command), job (what a compile computes once),
source (loading MODEL), train (the --train entry), emit (the --emit kinds), report (the compile
report), run (kcompile run), inspect (kcompile inspect), errors (CLIError, one-line failures).
"""
from __future__ import annotations

import os
import sys

from .args import compile_parser, inspect_parser, run_parser
from .compile import compile_command
from .errors import describe, fail
from .inspect import inspect_command
from .run import run_command

__all__ = ["main"]


def main(argv=None) -> int:
    """Run the kcompile command line on `argv` (default: sys.argv[1:]); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "run":
            return run_command(run_parser().parse_args(argv[1:]))
        if argv and argv[0] == "inspect":
            return inspect_command(inspect_parser().parse_args(argv[1:]))
        return compile_command(compile_parser().parse_args(argv))
    except SystemExit as e:  # argparse: --help, --version, or a usage error it already printed
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        return fail("interrupted", status=130)
    except BrokenPipeError:  # the reader (say, `| head`) left: stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as e:  # every failure is one clear line; the traceback only on request
        if os.environ.get("KCOMPILE_TRACEBACK"):
            raise
        return fail(describe(e))
