"""The one place graphs are executed from the front end: reference interpreter or native JIT."""
from __future__ import annotations

from kcompile.frontend import config


def resolve_backend(backend: str | None) -> str:
    """The backend asked for, else the configured default (native when the JIT exists)."""
    name = backend if backend is not None else config.backend()
    if name not in config.BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(config.BACKENDS)}")
    if name == "native" and not config.native_available():
        raise RuntimeError("backend 'native' was requested but kcompile.compiler.jit.compile_graph is not "
                           "available; use backend='reference'")
    return name


def make_executor(graph, backend: str | None = None):
    """callable(inputs: list[np.ndarray], params: dict[path -> np.ndarray]) -> list[np.ndarray]."""
    name = resolve_backend(backend)
    if name == "reference":
        from kcompile.runtime import reference

        def run_reference(inputs, params):
            return reference.run(graph, inputs, params)
        run_reference.backend = "reference"
        return run_reference
    from kcompile.compiler.jit import compile_graph
    run_native = compile_graph(graph)  # a compile failure raises: never a silent fallback
    return run_native
