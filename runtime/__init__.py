"""kcompile.runtime: executes graphs. Never imports kcompile.compiler or kcompile.frontend.

`load(path)` opens a compiled artifact (see native.py); `reference.run` is the NumPy oracle.
"""
from .artifact_check import ArtifactError
from .native import CompiledModel, NativeRuntimeError, load

__all__ = ["load", "CompiledModel", "ArtifactError", "NativeRuntimeError"]
