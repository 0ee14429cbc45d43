"""Compile an llvmlite module of kernels in-process (MCJIT, host CPU, O3): for kernel tests and benchmarks."""
from __future__ import annotations

import llvmlite.binding as llvm

from ..codelib import LLVM_LOCK
from ..threads import bind_thread_launcher

_INITIALIZED = False


def host_features() -> str:
    _init()
    return llvm.get_host_cpu_features().flatten()


def _init():
    global _INITIALIZED
    if not _INITIALIZED:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        _INITIALIZED = True


class JitModule:
    """A finalized module; `address(name)` gives a function's address for ctypes."""

    def __init__(self, module_ir, opt_level: int = 3, cpu: str | None = None, features: str | None = None):
        """cpu/features default to the host's; an older CPU (e.g. "x86-64-v3", "+avx2,-avx512f") runs here
        too, which tests the kernels' other vector widths."""
        with LLVM_LOCK:   # llvmlite's global LLVM state is shared with the compiler driver
            _init()
            target = llvm.Target.from_default_triple()
            self.tm = target.create_target_machine(cpu=cpu or llvm.get_host_cpu_name(),
                                                   features=features or llvm.get_host_cpu_features().flatten(),
                                                   opt=opt_level, jit=True)
            module_ir.triple = self.tm.triple
            module_ir.data_layout = str(self.tm.target_data)
            mod = llvm.parse_assembly(str(module_ir))
            mod.verify()
            self._optimize(mod, opt_level)
            self.engine = llvm.create_mcjit_compiler(mod, self.tm)
            self.engine.finalize_object()
            self.module = mod
        bind_thread_launcher(self.global_address)

    def _optimize(self, mod, opt_level):
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pb = llvm.create_pass_builder(self.tm, pto)
        pb.getModulePassManager().run(mod, pb)
        pb.close()

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def global_address(self, name: str) -> int:
        return self.engine.get_global_value_address(name)

    def asm(self) -> str:
        return self.tm.emit_assembly(self.module)


def call(jit: JitModule, fn_name: str, arrays, batch: int, nthreads: int = 1):
    """Call a kernel `void f(T* ..., i64 batch, i64 nthreads)` on contiguous NumPy arrays."""
    import ctypes
    import numpy as np
    for a in arrays:
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
            raise ValueError(f"{fn_name}: kernel arguments must be C-contiguous arrays")
    proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(arrays)), ctypes.c_int64, ctypes.c_int64)
    proto(jit.address(fn_name))(*[a.ctypes.data for a in arrays], batch, nthreads)
