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

The JIT's compilations (kernel_library=True) keep the shape-generic kernels out of the module:
they come from the kernel library (kernel_library.py), compiled once per target at their own opt
levels, and the remaining glue is optimized at GLUE_OPT_LEVEL; MCJIT links the glue's object with the
kernels'. A compile announced ahead (background_compile.py) may run beside in a forked child.
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

from kcompile.ir import Graph, print_graph
from kcompile.passes.manager import PassManager

from . import background_compile, tier_up
from .code_interface import CodeInterface
from .codegen import NativeModule, generate
from .codelib import CodeLibrary, JITEngine
from .disk_cache import DiskCache, toolchain_digest
from .fork_compile import parallel_allowed
from .kernel_library import KernelSet, load_objects
from .kernels.config import gemm_shape, vector_bits
from .kernels.int8_isa import int8_isa
from .kernels.sparse_int8 import uses_permute as uses_int8_permute
from .linker import assemble, link_shared
from .target import Target, host_target

COMPILER_VERSION = "0.1.0"
GLUE_OPT_LEVEL = 1        # the JIT's glue module, beside the O3 kernel library (kernel_library.py)
GLUE_VECTORIZED_OPT_LEVEL = 2   # its functions with scalar loops, which need LLVM's loop vectorizer


def graph_pipeline(opt_level: int, sparse: str = "never", target: Target | None = None) -> list:
    """Pass names in order; opt level 0 skips the optimizing rewrites, never the memory plan.

    sparse: the sparsify mode (auto | always | never). Only code whose weights are fixed when it
    is compiled (artifacts) may turn them sparse: the JIT takes parameters per call."""
    target = target or host_target()
    sparsify = [] if sparse == "never" else \
        [f"sparsify{{mode={sparse},lanes={_lanes(target)},int8_permute={uses_int8_permute(target.features)}}}"]
    optimize = ["subpixel-conv-transpose", "canonicalize"] if opt_level > 0 else []
    fused = ["fuse", "fuse-int8-pool", "fuse-conv-pool", "fuse-attention", "scan-constant-transposes"] if opt_level > 0 else []
    return optimize + sparsify + _prepack(target) + fused + ["plan-memory"]


def _hot_glue(node) -> bool:
    """Nodes whose hot loops the glue module itself holds, outside the kernel library, and lose
    speed at O1: a scan's cell runs once per time step inside the entry (BiLSTM batch-32 forward
    7.56 ms at O1 against 6.67 ms at O2), the fused attention kernel is emitted per shape (the
    Transformer benchmark's forward 8.45 against 7.97 ms); both A/Bs in one process, interleaved."""
    return node.op == "scan" or (node.op == "fused" and node.attrs.get("kind") == "attention")


def _with_sibling_updates(entries: dict) -> dict:
    """Each entry graph told (meta "params_updated_elsewhere") which parameters the other entries of
    the same library update in place: they share one parameter block, so a packed copy of such a
    weight (passes/packed_params.py) would go stale under the other entry's updates."""
    updated = {kind: set(g.meta.get("param_updates", {}).values()) for kind, g in entries.items()}
    out = {}
    for kind, g in entries.items():
        elsewhere = set().union(*(u for k, u in updated.items() if k != kind)) - updated[kind]
        out[kind] = g if not elsewhere else Graph(g.name, g.inputs, g.params, g.nodes, g.outputs, g.param_values,
                                                  g.output_names, {**g.meta, "params_updated_elsewhere": sorted(elsewhere)})
    return out


def _prepack(target: Target) -> list:
    """prepack-int8 with the target's int8 tile (compiler/kernels/int8_isa.py) and prepack-f32 with its
    f32 vector width (kernels/config.py): packed weight copies."""
    isa = int8_isa(target.features)
    return [f"prepack-int8{{group={isa.group},nr={isa.nr},lanes={isa.lanes},elem={isa.b_bytes}}}",
            f"prepack-f32{{lanes={gemm_shape(target.features, 4).lanes}}}"]


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
                 disk_cache: DiskCache | None = None, kernel_library: bool = False):
        if not name.isidentifier():
            raise ValueError(f"compilation name {name!r} must be a C identifier")
        self.entries = dict(entries)
        self.name = name
        self.options = options or CompileOptions()
        self.linker = linker
        self.disk_cache = disk_cache
        # the in-process JIT takes the shape-generic kernels from the kernel library (kernel_library.py);
        # artifacts keep one whole module
        self.kernels = KernelSet(self.target, disk_cache) if kernel_library else None
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
        if self.kernels is not None:   # the code is the glue alone, linked with the library's kernels
            h.update(b"kernel library\n")
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
        for kind, graph in _with_sibling_updates(self.entries).items():
            planned[kind], report = manager.run(graph)
            for r in report["passes"]:
                self.timings[f"{r['name']} ({kind})"] = r["seconds"]
        return planned

    @_stage
    def native(self) -> NativeModule:
        """The generated LLVM IR and the interface a loader needs (entry points, parameter layout)."""
        planned = self.planned
        if self.kernels is not None:
            self.kernels.glue_opt_levels = (self._module_opt_level(), min(self.options.opt_level, GLUE_VECTORIZED_OPT_LEVEL))
            self.kernels.tiered = self._tiered
            # a second process can take a part of the glue (a tier-up child compiles alone)
            self.kernels.split_for_helper = parallel_allowed() and not self._tiered
        t0 = time.perf_counter()
        native = generate(planned, self.name, self.target, self.kernels)
        self.timings["lower+codegen"] = time.perf_counter() - t0
        return native

    @_stage
    def library(self) -> CodeLibrary:
        """The module parsed, verified and optimized by LLVM."""
        library = CodeLibrary(self.name, self.native.ir_text, self.target, self._module_opt_level())
        library.module
        self.timings.update(library.timings)
        return library

    def _module_opt_level(self) -> int:
        """With the kernel library the module is glue (GEMM drivers, elementwise loops with explicit
        vectors, the entry): O1 compiles it in about 2/3 of O2's time (O2: 2/3 of O3's) for the same
        machine code, the functions with scalar loops for LLVM's vectorizer having gone to a part
        at GLUE_VECTORIZED_OPT_LEVEL (kernel_library.split_glue); the kernels keep O3. Step times
        within noise (bench/bench_compile_latency.py, bench/bench_models.py)."""
        if self.kernels is None:
            return self.options.opt_level
        if any(_hot_glue(n) for g in self.planned.values() for n in g.nodes):
            return min(self.options.opt_level, GLUE_VECTORIZED_OPT_LEVEL)
        return min(self.options.opt_level, GLUE_OPT_LEVEL)

    @functools.cached_property
    def _tiered(self) -> bool:
        """Whether the JIT's engine comes in two tiers (tier_up.py): a cold compile where a child can
        compile tier 1 into the disk cache. Decided before codegen (it pins kernels differently)."""
        return (self.kernels is not None and self.disk_cache is not None and tier_up.enabled()
                and threading.current_thread() is threading.main_thread()
                and not self.kernels.promised and parallel_allowed() and self.persisted is None)

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
        """(interface JSON, JIT object, kernel objects) from the disk cache; None on a miss, without a
        cache, or when a library kernel the code needs is gone (then all is compiled again)."""
        if self.disk_cache is None:
            return None
        return self._timed("disk-cache-read", self._read_persisted)

    def _read_persisted(self):
        hit = self.disk_cache.get(self.persistent_key)
        if hit is None:
            return None
        manifest = hit[0].get("kernels", {}) if isinstance(hit[0], dict) else {}
        kernels = load_objects(manifest, self.disk_cache) if manifest else []
        return None if kernels is None else (hit[0], hit[1], kernels)

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
    def kernel_objects(self) -> list:
        """Machine code of the library kernels the code calls (compiled here where not at hand)."""
        if self.kernels is None:
            return []
        self.native   # codegen decides which kernels are needed
        # a compile announced ahead (background_compile.py) takes the second core, leaving these kernels to us;
        # else the glue compiles beside the kernels (some of them in a second process where that is safe)
        alone = background_compile.start(self.kernels.needed(), self.kernels.pending_cost())
        return self._timed("llvm-kernels+glue", lambda: self.kernels.compile(
            beside=lambda: self.jit_object, parallel=False if alone else None))

    def store(self, promised=None) -> None:
        """Compile into the disk cache without loading the code (background_compile.py's child): the
        library kernels in `promised` ({key: calls}, KernelSet.needed) are left to another process, which
        is compiling them; the entry
        lists them, so it is used only where they are at hand (else it is compiled again)."""
        self.kernels.promised = dict(promised)     # before codegen: their bodies are not even generated
        self.kernels.hand_off = background_compile.child_handoff    # (in its child: a share to the parent)
        if self.disk_cache is None or self.persisted is not None:
            return
        self.kernel_objects
        self._write_entry(self.jit_object)

    @_stage
    def engine(self) -> JITEngine:
        """The code loaded in-process (MCJIT): from the disk cache, else compiled (and stored there);
        a cold compile where tier_up.py applies gets a TieredEngine (O0 now, optimized code soon)."""
        if self._tiered:
            return self._tiered_engine()
        hit = self.persisted
        code, kernels = (hit[1], hit[2]) if hit else (None, self.kernel_objects)
        code = code or self.jit_object
        if hit is None and self.disk_cache is not None:
            self._write_entry(code)
        interface = self.interface
        return self._timed("llvm-jit-load", lambda: JITEngine.from_object(
            code, self.target, self.options.opt_level, interface.libraries, kernels))

    def _tiered_engine(self) -> "tier_up.TieredEngine":
        """Tier 0 loaded here, tier 1 compiled by a forked child into the disk cache and published by a
        watcher thread (tier_up.py). The glue is printed where it is compiled: never in this process."""
        native = self.native
        pid = tier_up.fork_child(self._tier_up_child)
        interface = self.interface
        entries = tier_up.entry_signatures(native.module) if native.module is not None else None

        def tier0():
            glue, kernels = self.kernels.compile_tier0(self.name, _Printed(native))
            engine = JITEngine.from_object(glue, self.target, 0, interface.libraries, kernels)
            signatures = entries or tier_up.exported_entries(   # (the text was printed before: parse it)
                CodeLibrary(self.name, native.ir_text, self.target, 0).module)
            return tier_up.tiered_engine(engine, signatures, self.target)
        engine = self._timed("llvm-tier0", tier0)
        tier_up.watch(engine, pid, self._load_tier1, f"'{self.name}'",
                      ready=lambda: self.disk_cache.path(self.persistent_key).exists())   # (written whole, renamed)
        return engine

    def _tier_up_child(self) -> None:
        """In tier_up's child: what a compile that is not tiered writes to the disk cache. Codegen runs
        again: tier 0's code calls fewer GEMM micro-kernels (kernels/microkernel.tile_variants) and
        links this process's O0 kernels; the passes' result is the same and is reused."""
        full = self._untiered()
        full.native      # (codegen first: it decides which kernels compile() compiles)
        full.kernels.compile(beside=lambda: full.jit_object, parallel=False)
        full._write_entry(full.jit_object)

    def _load_tier1(self) -> JITEngine:
        """In tier_up's watcher (holding LLVM_LOCK): tier 1 from the disk cache, where the child put it;
        if it is not there (the child failed), compiled here, at the usual levels."""
        hit = self._read_persisted()
        if hit is not None:
            return JITEngine.from_object(hit[1], self.target, self.options.opt_level, self.interface.libraries, hit[2])
        return self._untiered().engine

    def _untiered(self) -> "Compilation":
        """This compilation again, never tiered (tier 1; no fork from a watcher): the passes' result reused."""
        full = Compilation(self.entries, self.name, self.options, self.linker, self.disk_cache, kernel_library=True)
        full._stages["planned"] = self.planned
        full.__dict__["_tiered"] = False
        return full

    def _write_entry(self, code: bytes) -> None:
        entry = self.interface.to_json() | ({"kernels": self.kernels.manifest()} if self.kernels else {})
        self._timed("disk-cache-write", lambda: self.disk_cache.put(self.persistent_key, entry, code))

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


class _Printed:
    """A NativeModule's IR text, printed by str() where a job compiles it (kernel_library.compile_tier0)."""

    def __init__(self, native: NativeModule):
        self.native = native

    def __str__(self) -> str:
        return self.native.ir_text


def c_symbol(name: str) -> str:
    """A C identifier made from a graph or model name."""
    s = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name) or "graph"
    return s if not s[0].isdigit() else "g_" + s
