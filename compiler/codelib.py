"""One LLVM module's lifecycle: parse, verify, optimize (new pass manager), emit object or JIT.

LLVM keeps global state (the pass registry, the JIT symbol tables), so every llvmlite call that
touches it runs under LLVM_LOCK: concurrent compilations are serialized, execution is not.
"""
from __future__ import annotations

import ctypes.util
import threading
import time

import llvmlite.binding as llvm

LLVM_LOCK = threading.RLock()


class CodeLibrary:
    """LLVM IR text -> optimized module -> object code (AOT) or an in-process engine (JIT)."""

    def __init__(self, name: str, ir_text: str, target, opt_level: int = 3):
        self.name = name
        self.ir_text = ir_text
        self.target = target
        self.opt_level = opt_level
        self.timings: dict[str, float] = {}
        self._module: llvm.ModuleRef | None = None

    @property
    def module(self) -> llvm.ModuleRef:
        """The verified and optimized module (built on first use)."""
        if self._module is None:
            with LLVM_LOCK:
                self._module = self._optimize(self._parse())
        return self._module

    def _parse(self) -> llvm.ModuleRef:
        t0 = time.perf_counter()
        mod = llvm.parse_assembly(self.ir_text)
        mod.triple = self.target.triple
        mod.data_layout = str(self.target.machine(self.opt_level).target_data)
        mod.verify()
        self.timings["llvm-parse"] = time.perf_counter() - t0
        return mod

    def _optimize(self, mod: llvm.ModuleRef) -> llvm.ModuleRef:
        t0 = time.perf_counter()
        pto = llvm.create_pipeline_tuning_options(speed_level=self.opt_level)
        pto.loop_vectorization = self.opt_level >= 2
        pto.slp_vectorization = self.opt_level >= 2
        # No generic loop unrolling: the GEMM, convolution and int8 kernels unroll their own register
        # tiles, and unrolling the other loops (elementwise, reductions) made the code 30% bigger and
        # LLVM's code generation 40% slower for the same step time (MNIST MLP and convnet training
        # steps, CPU time per step within 2%: bench/bench_compile_latency.py measures the compile).
        pto.loop_unrolling = False
        pb = llvm.create_pass_builder(self.target.machine(self.opt_level), pto)
        pb.getModulePassManager().run(mod, pb)
        mod.verify()
        self.timings["llvm-optimize"] = time.perf_counter() - t0
        return mod

    def optimized_ir(self) -> str:
        return str(self.module)

    def emit_assembly(self) -> str:
        with LLVM_LOCK:
            return self.target.machine(self.opt_level).emit_assembly(self.module)

    def emit_object(self) -> bytes:
        with LLVM_LOCK:
            return self.target.machine(self.opt_level).emit_object(self.module)

    def emit_jit_object(self) -> bytes:
        """Machine code for an in-process engine (JIT code model), loadable by JITEngine.from_object
        in this process or, through the persistent cache, in a later one."""
        with LLVM_LOCK:
            return self.target.jit_emitter(self.opt_level).emit_object(self.module)

    def jit(self, libraries=()) -> "JITEngine":
        """Compile in-process; `libraries` are shared objects whose symbols the code calls."""
        return JITEngine.from_module(self.module, self.target, self.opt_level, libraries)


class JITEngine:
    """An MCJIT engine owning the machine code; keep it alive while its functions are used."""

    def __init__(self, engine: llvm.ExecutionEngine):
        self._engine = engine

    @classmethod
    def from_module(cls, module: llvm.ModuleRef, target, opt_level: int, libraries=()) -> "JITEngine":
        with LLVM_LOCK:
            load_libraries(libraries)
            # MCJIT takes ownership of the module; give it a private copy so ours stays usable.
            own = llvm.parse_bitcode(module.as_bitcode())
            engine = llvm.create_mcjit_compiler(own, target.new_machine(opt_level))
            engine.finalize_object()
            engine.run_static_constructors()
        return cls(engine)

    @classmethod
    def from_object(cls, obj: bytes, target, opt_level: int, libraries=(), more=()) -> "JITEngine":
        """Load machine code from emit_jit_object: what MCJIT does after code generation, without it.

        more: further objects (library kernels, kernel_library.py) the code calls; linked in."""
        with LLVM_LOCK:
            load_libraries(libraries)
            empty = llvm.parse_assembly("")
            empty.triple = target.triple
            engine = llvm.create_mcjit_compiler(empty, target.new_machine(opt_level))
            for code in (obj, *more):
                engine.add_object_file(llvm.ObjectFileRef.from_data(code))
            engine.finalize_object()
        return cls(engine)

    def global_address(self, symbol: str) -> int:
        """Address of a global variable in the loaded code, or 0 if there is none."""
        with LLVM_LOCK:
            return self._engine.get_global_value_address(symbol)

    def on_publish(self, callback) -> None:
        """callback() when other code replaces this engine's (tier_up.TieredEngine): never here."""

    def bind_globals(self, binder) -> None:
        """binder(global_address) writes into the code's globals (tier_up.TieredEngine replays it)."""
        binder(self.global_address)

    def address(self, symbol: str) -> int:
        with LLVM_LOCK:
            addr = self._engine.get_function_address(symbol)
        if not addr:
            raise KeyError(f"symbol '{symbol}' not found in the compiled code")
        return addr


def load_libraries(names) -> None:
    """Make a system library's symbols (e.g. libgomp) visible to JIT-compiled code."""
    for name in names:
        path = ctypes.util.find_library(name) or name
        if llvm.load_library_permanently(path) is not None:  # pragma: no cover - llvmlite raises
            raise OSError(f"cannot load library {name}")

