"""Global front-end settings: the execution backend, floatx and the fuzz factor epsilon (Keras 3 defaults)."""
from __future__ import annotations

BACKENDS = ("native", "reference")
DYNAMIC_LENGTHS = ("once", "per-length")
_state = {"backend": None, "epsilon": 1e-7, "floatx": "float32", "dynamic_lengths": "once"}


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


def set_dynamic_lengths(mode: str):
    """How the native backend runs a model with Input(shape=(None, F)): "once" (the default: one
    compile serves every sequence length) or "per-length" (the graph specialized and compiled once
    per length it meets: static trip counts, at a compile per new length; see bench_recurrent.py)."""
    if mode not in DYNAMIC_LENGTHS:
        raise ValueError(f"unknown dynamic-length mode {mode!r}; expected one of {list(DYNAMIC_LENGTHS)}")
    _state["dynamic_lengths"] = mode


def dynamic_lengths() -> str:
    return _state["dynamic_lengths"]
