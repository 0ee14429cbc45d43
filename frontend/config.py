"""Global front-end settings: the execution backend, floatx and the fuzz factor epsilon (Keras 3 defaults)."""
from __future__ import annotations

BACKENDS = ("native", "reference")
_state = {"backend": None, "epsilon": 1e-7, "floatx": "float32"}


def epsilon() -> float:
    """The fuzz factor Keras clips probabilities with (1e-7)."""
    return _state["epsilon"]


def set_epsilon(value: float):
    _state["epsilon"] = float(value)


def floatx() -> str:
    return _state["floatx"]


def set_backend(name: str | None):
    """Choose how graphs run: "native" (llvmlite JIT), "reference" (NumPy), or None for the default."""
    if name is not None and name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(BACKENDS)} or None")
    _state["backend"] = name
    from . import state_version   # prepared native predict calls must not outlive a backend switch
    state_version.bump()


def backend() -> str:
    """The backend set by set_backend, else "native" when the JIT compiler is present, else "reference"."""
    if _state["backend"] is not None:
        return _state["backend"]
    return "native" if native_available() else "reference"


def native_available() -> bool:
    """True when kcompile.compiler.jit exists and exposes compile_graph."""
    try:
        from kcompile.compiler import jit
    except ImportError:
        return False
    return hasattr(jit, "compile_graph")
