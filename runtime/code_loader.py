"""Opening an artifact's code: a shared library through ctypes, or (no linker) an object file
through llvmlite's MCJIT; both give addresses of entry points and globals, and bind the thread pool."""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

from kcompile.ir.native_pool import parallel_launch_address

from .artifact_check import ArtifactError


class SharedLibrary:
    """A linked artifact library opened with ctypes."""

    def __init__(self, path: Path):
        try:
            self.lib = ctypes.CDLL(str(path.resolve()))
        except OSError as e:
            raise ArtifactError(f"cannot load {path.name}: {e}") from None

    def address(self, symbol: str) -> int:
        try:
            return ctypes.cast(getattr(self.lib, symbol), ctypes.c_void_p).value
        except AttributeError:
            raise ArtifactError(f"the library has no entry point '{symbol}'") from None

    def string(self, symbol: str) -> str:
        try:
            return ctypes.string_at(ctypes.addressof(ctypes.c_char.in_dll(self.lib, symbol))).decode()
        except ValueError:
            raise ArtifactError(f"the library has no interface string '{symbol}'") from None

    def bind_threads(self, symbol: str) -> bool:
        try:
            slot = ctypes.c_void_p.in_dll(self.lib, symbol)
        except ValueError:
            return False
        launch = parallel_launch_address()
        if launch:
            slot.value = launch
        return bool(launch)


class ObjectCode:
    """The no-linker path: the object file runs in-process through llvmlite's MCJIT."""

    _lock = threading.Lock()

    def __init__(self, obj: bytes):
        import llvmlite.binding as llvm

        with self._lock:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            target = llvm.Target.from_default_triple()
            tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                              features=llvm.get_host_cpu_features().flatten(), opt=3)
            empty = llvm.parse_assembly("")
            self.engine = llvm.create_mcjit_compiler(empty, tm)
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
            self.engine.finalize_object()

    def address(self, symbol: str) -> int:
        addr = self.engine.get_function_address(symbol)
        if not addr:
            raise ArtifactError(f"the object file has no entry point '{symbol}'")
        return addr

    def string(self, symbol: str) -> str:
        addr = self.engine.get_global_value_address(symbol)
        if not addr:
            raise ArtifactError(f"the object file has no interface string '{symbol}'")
        return ctypes.string_at(addr).decode()

    def bind_threads(self, symbol: str) -> bool:
        slot = self.engine.get_global_value_address(symbol)
        launch = parallel_launch_address()
        if slot and launch:
            ctypes.c_void_p.from_address(slot).value = launch
        return bool(slot and launch)


