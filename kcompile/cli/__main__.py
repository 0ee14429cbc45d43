"""`python -m kcompile.cli`: the kcompile command line."""
import sys

from kcompile.cli import main

sys.exit(main())
