"""Loading MODEL: a saved model (no code runs) or a Python file's `model` / `build_model()`."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import kcompile

from .errors import CLIError


def load_model_source(path_text: str):
    """The model in MODEL: a saved model (loaded without running code) or a Python file's model."""
    path = Path(path_text)
    if not path.exists():
        raise CLIError(f"model '{path}' does not exist")
    if path.suffix == ".py":
        return _model_from_python(path)
    return kcompile.models.load_model(str(path))  # a JSON config and weights: no code runs


def _model_from_python(path: Path):
    # Not "__main__": the file's `if __name__ == "__main__":` block (say, training) does not run.
    # Its folder leads sys.path meanwhile, as with `python file.py`, so its sibling imports work.
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        namespace = runpy.run_path(str(path), run_name="__kcompile_model__")
    except SystemExit as e:  # not argparse's exit: the model file itself stopped
        raise CLIError(f"'{path}' exited (status {e.code}) instead of defining a model") from None
    finally:
        sys.path.remove(folder)
    if "model" in namespace:
        return namespace["model"]
    if callable(namespace.get("build_model")):
        return namespace["build_model"]()
    raise CLIError(f"'{path}' defines neither a `model` object nor a `build_model()` function")


def forward_graph(model):
    """The inference graph of a front-end model (or of an ir.Graph given directly)."""
    from kcompile.ir import Graph
    if isinstance(model, Graph):
        return model
    trace = getattr(model, "forward_graph", None)
    if not callable(trace):
        raise CLIError(f"the model is a {type(model).__name__}, neither a kcompile model nor a kcompile.ir.Graph")
    return trace()
