"""What the in-process loader needs to call compiled code, without the code generator's state.

NativeModule (codegen.py) carries the LLVM IR and the entry graphs; a process that takes machine
code from the persistent compile cache (disk_cache.py) has neither, only this: the entry symbols,
the parameter layout, the workspace sizes, the libraries the code calls and its status messages.
It round-trips through JSON, so a cache entry holds no pickled Python.
"""
from __future__ import annotations

from dataclasses import dataclass

from kcompile.ir.dtypes import dtype

from .codegen import NativeModule, ParamSlot


@dataclass(frozen=True)
class CodeInterface:
    name: str
    params: tuple             # ParamSlot, in the parameter block's order
    workspace: dict           # entry kind -> (bytes per batch row, static bytes)
    libraries: tuple
    status_messages: dict     # status code -> message

    def symbol(self, kind: str) -> str:
        return f"{self.name}_{kind}"

    @classmethod
    def of(cls, native: NativeModule) -> "CodeInterface":
        return cls(native.name, tuple(native.params), dict(native.workspace), tuple(sorted(native.libraries)),
                   dict(native.status_messages))

    def to_json(self) -> dict:
        return {"name": self.name,
                "params": [[s.name, s.offset, s.nbytes, list(s.shape), s.dtype.name] for s in self.params],
                "workspace": {k: list(v) for k, v in self.workspace.items()},
                "libraries": list(self.libraries),
                "status_messages": {str(k): v for k, v in self.status_messages.items()}}

    @classmethod
    def from_json(cls, d: dict) -> "CodeInterface":
        params = tuple(ParamSlot(n, off, nb, tuple(shape), dtype(dt)) for n, off, nb, shape, dt in d["params"])
        return cls(d["name"], params, {k: tuple(v) for k, v in d["workspace"].items()}, tuple(d["libraries"]),
                   {int(k): v for k, v in d["status_messages"].items()})
