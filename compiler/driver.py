"""One compilation and its stages, each computed once on first use (numba's CodeLibrary lifecycle).

    entry graphs ──passes──> planned graphs ──lower+codegen──> NativeModule (LLVM IR text)
       ──parse+verify+optimize──> CodeLibrary ──> optimized IR ──code generator──> assembly
       ──assemble (cc -c)──> object code ──link (cc -shared)──> shared library bytes
    CodeLibrary ──MCJIT──> in-process engine; without a C compiler driver, LLVM emits the object.

The JIT (jit.py), the artifact writer (artifact.py) and the CLI ask one Compilation for the stages
they need, so asking for several outputs (`--emit llvm,asm,so`) runs the passes, codegen and LLVM
once. Every stage is a pure function of `cache_key` (the printed entry graphs with their in-place
updates, the options, the target and the compiler version). With a DiskCache, the JIT's machine
code and its CodeInterface are kept on disk under that key (plus the toolchain's digest), and a
later process that asks for the same compilation loads them instead of compiling.
"""
from __future__ import annotations

import functools
import hashlib
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

from kcompile.ir import print_graph
from kcompile.passes.manager import PassManager

from .code_interface import CodeInterface
from .codegen import NativeModule, generate
from .codelib import CodeLibrary, JITEngine
from .disk_cache import DiskCache, toolchain_digest
from .kernels.config import vector_bits
from .linker import assemble, link_shared
from .target import Target, host_target

COMPILER_VERSION = "0.1.0"


def graph_pipeline(opt_level: int, sparse: str = "never", target: Target | None = None) -> list:
    """Pass names in order; opt level 0 skips the optimizing rewrites, never the memory plan.

    sparse: the sparsify mode (auto | always | never). Only code whose weights are fixed when it
    is compiled (artifacts) may turn them sparse: the JIT takes parameters per call."""
    sparsify = [] if sparse == "never" else [f"sparsify{{mode={sparse},lanes={_lanes(target or host_target())}}}"]
    optimize = ["subpixel-conv-transpose", "canonicalize"] if opt_level > 0 else []
    return optimize + sparsify + (["fuse"] if opt_level > 0 else []) + ["plan-memory"]


def _lanes(target: Target) -> int:
    """f32 lanes of the sparse kernels' vectors (kernels/config.vector_bits) for the cost model."""
    return vector_bits(target.features) // 32


@dataclass(frozen=True)
class CompileOptions:
    """What, besides the graphs, decides the generated code (and the dumps asked for on the way)."""

    opt_level: int = 3
    passes: str | tuple | None = None     # a pipeline replacing graph_pipeline(opt_level)
    verify_each: bool = False
    print_ir_after_all: bool = False      # dumps go to stderr
    target: Target | None = None          # None: the host
    sparse: str = "never"                 # sparsify mode: auto | always | never (passes/sparsify.py)

    @property
    def pipeline(self):
        return self.passes if self.passes else graph_pipeline(self.opt_level, self.sparse, self.target)

    def key(self) -> str:
        """The options that change the code (not the dumps or checks)."""
        target = self.target or host_target()
        return repr((self.opt_level, self.pipeline, target.triple, target.cpu, target.features))


def _stage(fn):
    """A cached stage: computed once on first use (a second thread asking waits for it), counted
    in `stage_runs`, timed in `stage_seconds`."""
    name = fn.__name__

    @functools.wraps(fn)
    def get(self):
        with self._lock:
            if name not in self._stages:
                t0 = time.perf_counter()
                self._stages[name] = fn(self)
                self.stage_runs[name] += 1
                self.stage_seconds[name] = time.perf_counter() - t0
            return self._stages[name]
    return property(get)


class Compilation:
    """One compile of entry graphs ('forward', 'train_step', ...) into one native module."""

    def __init__(self, entries: dict, name: str, options: CompileOptions | None = None, linker: str | None = "cc",
                 disk_cache: DiskCache | None = None):
        if not name.isidentifier():
            raise ValueError(f"compilation name {name!r} must be a C identifier")
        self.entries = dict(entries)
        self.name = name
        self.options = options or CompileOptions()
        self.linker = linker
        self.disk_cache = disk_cache
        self.timings: dict[str, float] = {}   # pass and LLVM steps, in the order they ran
        self.stage_runs: Counter = Counter()  # how often each stage was computed (once, when cached)
        self.stage_seconds: dict[str, float] = {}
        self._stages: dict = {}
        self._lock = threading.RLock()

    @property
    def target(self) -> Target:
        return self.options.target or host_target()

    @functools.cached_property
    def cache_key(self) -> str:
        """A digest of everything the generated code depends on."""
        h = hashlib.sha256(f"kcompile {COMPILER_VERSION}\n{self.name}\n{self.options.key()}\n".encode())
        for kind, g in sorted(self.entries.items()):
            updates = sorted(g.meta.get("param_updates", {}).items())
            h.update(f"{kind}\n{print_graph(g)}\n{updates}\n".encode())
        return h.hexdigest()

    @functools.cached_property
    def persistent_key(self) -> str:
        """cache_key plus the digest of LLVM, llvmlite and the compiler's sources (disk_cache.py)."""
        return hashlib.sha256(f"{self.cache_key}\n{toolchain_digest()}".encode()).hexdigest()

    # -- stages ---------------------------------------------------------------------------------
    @_stage
    def planned(self) -> dict:
        """Entry kind -> graph after the pass pipeline (fusion groups and the memory plan)."""
        o = self.options
        manager = PassManager(o.pipeline, verify_each=o.verify_each, print_ir_after_all=o.print_ir_after_all,
                              stream=sys.stderr)
        planned = {}
        for kind, graph in self.entries.items():
            planned[kind], report = manager.run(graph)
            for r in report["passes"]:
                self.timings[f"{r['name']} ({kind})"] = r["seconds"]
        return planned

    @_stage
    def native(self) -> NativeModule:
        """The generated LLVM IR and the interface a loader needs (entry points, parameter layout)."""
        planned = self.planned
        t0 = time.perf_counter()
        native = generate(planned, self.name, self.target)
        self.timings["lower+codegen"] = time.perf_counter() - t0
        return native

    @_stage
    def library(self) -> CodeLibrary:
        """The module parsed, verified and optimized by LLVM."""
        library = CodeLibrary(self.name, self.native.ir_text, self.target, self.options.opt_level)
        library.module
        self.timings.update(library.timings)
        return library

    @_stage
    def llvm_ir(self) -> str:
        """The optimized module as LLVM IR text."""
        return self.library.optimized_ir()

    @_stage
    def assembly(self) -> str:
        return self._timed("llvm-emit-asm", self.library.emit_assembly)

    @_stage
    def object_code(self) -> bytes:
        """Machine code: the assembly run through the system assembler where there is one, so that
        asking for the assembly and the library runs LLVM's code generator once; else LLVM's
        own object emitter (the same instructions either way)."""
        key = self._object_key()
        hit = self.disk_cache.get(key) if key else None
        if hit is not None:
            return hit[1]
        if self.linker and shutil.which(self.linker):
            asm = self.assembly
            code = self._timed("assemble", lambda: assemble(asm, self.linker))
        else:   # no linker: the runtime loads this object in-process with MCJIT (runtime/code_loader.py),
            # so it takes the JIT code model: small-model PC-relative references between sections that
            # MCJIT maps apart overflow in long-lived processes (see Target.new_machine)
            code = self._timed("llvm-emit-object", self.library.emit_jit_object)
        if key:
            self.disk_cache.put(key, {}, code)
        return code

    def _object_key(self) -> str | None:
        """The disk-cache key of the artifact's object code: the planned graphs, because a pass such
        as sparsify decides from the weights' values (the JIT never sparsifies, so cache_key does)."""
        if self.disk_cache is None:
            return None
        h = hashlib.sha256(f"object {self.linker}\n{self.persistent_key}\n".encode())
        for kind, g in sorted(self.planned.items()):
            h.update(f"{kind}\n{print_graph(g)}\n".encode())
        return h.hexdigest()

    @_stage
    def shared_library(self) -> bytes | None:
        """The object linked into a shared library by `linker`; None where there is no linker."""
        code = self.object_code
        return self._timed("link", lambda: link_shared(code, sorted(self.native.libraries), self.linker))

    @_stage
    def persisted(self):
        """(interface JSON, JIT object) from the disk cache; None on a miss or without a cache."""
        if self.disk_cache is None:
            return None
        return self._timed("disk-cache-read", lambda: self.disk_cache.get(self.persistent_key))

    @_stage
    def interface(self) -> CodeInterface:
        """What the in-process loader needs (from the cache when the code comes from there)."""
        hit = self.persisted
        return CodeInterface.from_json(hit[0]) if hit else CodeInterface.of(self.native)

    @_stage
    def jit_object(self) -> bytes:
        """Machine code for the in-process engine (LLVM's JIT code model)."""
        return self._timed("llvm-emit-jit-object", self.library.emit_jit_object)

    @_stage
    def engine(self) -> JITEngine:
        """The code loaded in-process (MCJIT): from the disk cache, else compiled (and stored there)."""
        hit = self.persisted
        code = hit[1] if hit else self.jit_object
        if hit is None and self.disk_cache is not None:
            self._timed("disk-cache-write", lambda: self.disk_cache.put(self.persistent_key,
                                                                        self.interface.to_json(), code))
        interface = self.interface
        return self._timed("llvm-jit-load", lambda: JITEngine.from_object(
            code, self.target, self.options.opt_level, interface.libraries))

    def _timed(self, name: str, fn):
        t0 = time.perf_counter()
        out = fn()
        self.timings[name] = time.perf_counter() - t0
        return out

    def report(self) -> str:
        """Per-step compile times, one per line."""
        width = max((len(k) for k in self.timings), default=5)
        lines = [f"{k:<{width}}  {1e3 * t:8.2f} ms" for k, t in self.timings.items()]
        return "\n".join(lines + [f"{'total':<{width}}  {1e3 * sum(self.timings.values()):8.2f} ms"])


def c_symbol(name: str) -> str:
    """A C identifier made from a graph or model name."""
    s = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name) or "graph"
    return s if not s[0].isdigit() else "g_" + s
