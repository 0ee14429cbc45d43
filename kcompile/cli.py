"""The kcompile command line."""
import sys


def main(argv=None) -> int:
    print("usage: kcompile MODEL -o OUTDIR [--emit KIND]", file=sys.stderr)
    return 2
