"""One libFuzzer process for one target (started by fuzz.run; not meant to be called by hand):

    python -m fuzz.worker TARGET FIXTURES SCRATCH [libFuzzer arguments: corpus dir or files, -flags]

kcompile (and the stdlib/NumPy parsers it hands bytes to) is imported under atheris'
instrumentation, so coverage of those modules guides the mutations.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import atheris

# Whole top-level packages (atheris instruments by package). NumPy is left out: instrumenting all of
# it triples the start-up time, and its .npy header parser is reached through kcompile anyway.
INSTRUMENTED = ["kcompile", "zipfile", "json", "fuzz"]
EAGER = ["kcompile", "kcompile.frontend.saving", "kcompile.frontend.config_tree", "kcompile.frontend.layers",
         "kcompile.frontend.models", "kcompile.runtime", "kcompile.runtime.native", "kcompile.ir.text",
         "kcompile.cli", "kcompile.cli.run", "kcompile.cli.args", "fuzz.harness"]


def main(argv: list) -> None:
    target_name, fixtures, scratch, libfuzzer_args = argv[1], Path(argv[2]), Path(argv[3]), argv[4:]
    with atheris.instrument_imports(include=INSTRUMENTED):
        for name in EAGER:
            importlib.import_module(name)
        from fuzz.targets import TARGETS
        target = importlib.import_module(TARGETS[target_name])
    from fuzz.harness import limit_address_space
    one_input = target.setup(fixtures, scratch)
    limit_address_space()
    atheris.Setup([argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
