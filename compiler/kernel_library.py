"""Shape-generic kernels compiled once per target and reused by every model (in and across processes).

The GEMM micro-kernels, their tile dispatchers and the packing routines take every size as an
argument: their LLVM IR depends only on their name, their function type, the target CPU and the
compiler's sources. They were a third of a cold compile's LLVM time and were compiled again for
every model, and for the train step after the forward pass. Here each one is its own small LLVM
module, optimized at its own level (O1 for the micro-kernels and tile dispatchers, whose IR is already
vectorized and unrolled; O3 for the rest) and compiled on its own, and its machine code is kept:

  - in this process (a bounded table), so the train step reuses the forward pass's kernels;
  - in the on-disk compile cache (disk_cache.py), so a new model in a new process compiles only
    its own glue code (the entry function, GEMM drivers, elementwise loops, ...).

Codegen asks `library_kernel` for such a function: when its machine code is already at hand the
module gets only a declaration (the body is not even generated), else the body is generated as
usual and `KernelSet.split` moves it into its own module text after codegen. The in-process JIT
loads the glue object and the kernels' objects into one engine, which links them. Artifacts and
the CLI keep one whole module (no Compilation there passes a KernelSet).

A kernel's key is a digest of its name, function type, the target (triple, CPU, features), its opt
level, and the toolchain digest (LLVM, llvmlite and every source file of ir/, passes/, compiler/):
the generator can only change with a source file, and then every key changes.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from llvmlite import ir

from .codelib import CodeLibrary
from .disk_cache import DiskCache, toolchain_digest
from .fork_compile import compile_all
from .glue_split import declaration, largest_half, needs_vectorizer, size, split_glue
from .loops import internal_function

KERNEL_OPT_LEVEL = 3      # a kernel's default: packing loops with scalar copies that LLVM's vectorizer widens
# The GEMM micro-kernels and their tile dispatchers are vectorized and unrolled in our own IR: O1 gives them
# the same inner loops (vector FMAs, loads, broadcasts; the scalar prologue differs) in ~80% of O3's LLVM
# time, step times within noise (bench/bench_models.py, MNIST MLP and convnet, batch 1 and 64)
EXPLICIT_VECTOR_OPT_LEVEL = 1
# LLVM time per IR instruction of a kernel at its level, against O3's (the units of the shares' costs)
# (O0, tier_up.py's tier 0: parse + FastISel ~0.27 of O1's time, plus printing the text, the same at any level)
KERNEL_COST = {0: 0.3, 1: 0.8, 2: 1.0, 3: 1.0}
# LLVM time per IR instruction of the glue at each opt level against the kernels' (O3, explicit vectors:
# ~0.07 ms): O2 ~0.13 ms, O1 ~0.09 ms (MNIST MLP and convnet, bench/bench_compile_phases.py): the weights
# that share the work between the two processes
GLUE_COST = {0: 0.15, 1: 1.3, 2: 2, 3: 2.2}   # O0: ~0.12 of O1's time (the MLP's train-step glue)
MIN_CHILD_COST = 300      # ~20 ms of LLVM: less than that is not worth a fork
_MEMORY: OrderedDict = OrderedDict()   # key -> (calls {name: key}, object bytes)
_MEMORY_LIMIT = 512
GLUE_JOB = "glue"                      # compile_tier0's job key of the glue module (kernel keys are digests)
_TIER0: OrderedDict = OrderedDict()    # key -> (calls, O0 object): tier-0 kernels (KernelSet.compile_tier0)
_LOCK = threading.Lock()


def kernel_key(name: str, ftype: ir.FunctionType, target, opt_level: int = KERNEL_OPT_LEVEL) -> str:
    text = f"kernel {name}\n{ftype}\n{target!r}\nopt {opt_level}\n{toolchain_digest()}"
    return hashlib.sha256(text.encode()).hexdigest()


def library_kernel(module: ir.Module, name: str, ret: ir.Type, args: list, arg_names=(),
                   opt_level: int = KERNEL_OPT_LEVEL):
    """internal_function for a shape-generic kernel: None if the module has it, else (fn, emit_body).

    emit_body is False when the kernel's machine code is at hand (fn then stays a declaration).
    opt_level: LLVM's for this kernel (EXPLICIT_VECTOR_OPT_LEVEL where our IR is already vectorized)."""
    fn = internal_function(module, name, ret, args, arg_names)
    if fn is None:
        return None
    fn.kc_library_kernel = True
    fn.kc_opt_level = opt_level
    kernels = getattr(module, "kc_kernels", None)
    if kernels is not None and kernels.pin(fn):
        fn.linkage = ""          # an external declaration, resolved against the kernel's object
        return fn, False
    return fn, True


class KernelSet:
    """The kernels one compilation uses: pinned objects (found compiled) and texts (to compile)."""

    def __init__(self, target, disk_cache: DiskCache | None = None):
        self.target = target
        self.disk_cache = disk_cache
        self.objects: dict = {}       # key -> object bytes, for every kernel the code needs
        self.names: dict = {}         # key -> kernel name
        self.texts: dict = {}         # key -> (name, IR text (a KernelText), calls {name: key}, opt level) to compile
        self.compiled = 0             # how many kernels this compilation compiled
        self.glue_opt_levels = None   # (the glue's, its vectorized loops') opt levels: set by the JIT
        self.split_for_helper = False # where a forked helper will compile beside this process
        self.parts: dict = {}         # key -> (name, IR text, opt level, cost) of a glue part (glue_split.py)
        self.glue_size = 0            # instructions left in the glue module (what compiles beside)
        self.promised: dict = {}      # key -> calls {name: key} of kernels another process compiles (needed())
        self.used_promised: set = set()          # those the code calls
        self.hand_off = None          # in background_compile's child: its Handoff (a share goes to the parent)
        self.handed: set = set()      # keys of the jobs handed off
        self.tiered = False           # tier 0 of a tiered compile (tier_up.py): earlier tier 0s' O0 kernels are at hand
        self.tier0_objects: dict = {} # key -> O0 object of those (this process's _TIER0 table)

    # -- codegen time ----------------------------------------------------------------------------
    def attach(self, module: ir.Module) -> None:
        module.kc_kernels = self

    def pin(self, fn: ir.Function) -> bool:
        """Whether fn's machine code (and that of every kernel it calls) is at hand; keeps it if so."""
        return self._pin(fn.name, self.key(fn), set())

    def key(self, fn: ir.Function) -> str:
        return kernel_key(fn.name, fn.ftype, self.target, opt_level(fn))

    def _pin(self, name: str, key: str, seen: set) -> bool:
        if key in self.objects or key in seen:
            return True
        if key in self.promised:     # another process compiles it and its callees: a declaration here
            self.names[key] = name
            self.used_promised.add(key)
            return all(self._pin(n, k, seen) for n, k in self.promised[key].items())
        seen.add(key)
        entry, into = _lookup(key, self.disk_cache), self.objects
        if entry is None and self.tiered:
            # a kernel an earlier tier 0 of this process compiled at O0 (tier_up.py): this tier 0 links
            # that object (tier 1 does not come from this KernelSet: the child runs codegen again)
            with _LOCK:
                entry, into = _TIER0.get(key), self.tier0_objects
        if entry is None:
            return False
        calls, code = entry
        if not all(self._pin(n, k, seen) for n, k in calls.items()):
            return False
        into[key], self.names[key] = code, name
        return True

    def split(self, module: ir.Module) -> None:
        """Move every kernel body codegen emitted into its own module text; leave declarations."""
        made = [f for f in module.functions if getattr(f, "kc_library_kernel", False) and f.blocks]
        for fn in made:
            fn.linkage = ""
        for fn in made:
            key = self.key(fn)
            callees = _callees(fn)
            strays = [c.name for c in callees if not (getattr(c, "kc_library_kernel", False) or c.name.startswith("llvm."))]
            if strays:   # a kernel's module holds only kernels and intrinsics: anything else would not link
                raise ValueError(f"library kernel {fn.name} calls {strays}, which are neither kernels nor intrinsics")
            calls = {c.name: self.key(c) for c in callees
                     if getattr(c, "kc_library_kernel", False)}
            decls = [declaration(c) for c in callees]
            head = f'target triple = "{self.target.triple}"\n\n' + "\n".join(decls) + "\n\n"
            self.texts[key] = (fn.name, KernelText(fn, head), calls, opt_level(fn))
        for fn in made:
            fn.blocks = []           # the glue module keeps a declaration

    def split_glue(self, module: ir.Module) -> None:
        """Where glue_opt_levels is set, take parts of the glue into modules of their own, compiled and
        kept like kernels (glue_split.py): the functions that need LLVM's loop vectorizer (scalar loops)
        at the higher level, the rest staying at the lower one; and, where a forked helper compiles
        beside (split_for_helper), about half of that rest, so that it has its share."""
        if self.glue_opt_levels is not None:
            main, vectorized = self.glue_opt_levels
            if vectorized != main:
                self._part(module, f"{module.name}_vec", vectorized, lambda fns: [f for f in fns if needs_vectorizer(f)])
            if self.split_for_helper:
                self._part(module, f"{module.name}_part", main, largest_half)
        self.glue_size = sum(size(f) for f in module.functions)

    def _part(self, module: ir.Module, name: str, opt_level: int, pick) -> None:
        text, moved = split_glue(module, pick)
        if text is None:
            return
        key = hashlib.sha256(f"glue part\n{self.target!r}\nopt {opt_level}\n{toolchain_digest()}\n"
                             f"{text}".encode()).hexdigest()
        found = _lookup(key, self.disk_cache)
        if found is not None:
            self.objects[key], self.names[key] = found[1], name
            return
        self.parts[key] = (name, text, opt_level, GLUE_COST[opt_level] * moved)

    # -- after codegen ---------------------------------------------------------------------------
    def compile(self, beside=None, parallel: bool | None = None) -> list:
        """Compile the kernels codegen emitted (keeping their objects); returns every object needed.

        beside(): other LLVM work (the glue) run meanwhile; with two cores a forked child process
        prints and compiles a share of the kernels and glue parts beside it (fork_compile.py), the
        shares balanced by their instruction counts."""
        jobs = self._jobs()
        if self.hand_off is not None:
            kept = self.hand_off(jobs, self._cost, self._glue_cost(), self._describe, self.target)
            for key, payload in jobs:
                if (key, payload) not in kept:
                    self.names[key] = payload[0]
                    self.handed.add(key)
            jobs = kept
        built = compile_all(jobs, self._compile_one, beside, parallel, cost=self._cost,
                            beside_cost=self._glue_cost(), min_child_cost=MIN_CHILD_COST)
        for key, code in sorted(built.items()):
            name, calls = (self.texts[key][0], self.texts[key][2]) if key in self.texts else (self.parts[key][0], {})
            _store(key, name, calls, code, self.disk_cache)
            self.objects[key], self.names[key] = code, name
            self.compiled += key in self.texts
        return [self.objects[k] for k in sorted(self.objects)]

    def compile_tier0(self, glue_name: str, glue_text) -> tuple:
        """(the glue's object, the kernels' objects) for tier 0 (tier_up.py): the glue, and the kernels and
        glue parts not at hand, at O0 (the kernels kept in _TIER0 for this process's next tiered compile),
        a forked helper taking a share as in compile() (fork_compile.py). glue_text: printed where it is
        compiled (str()), so that printing the glue, too, may run on the second core."""
        jobs = self._jobs(level=0) + [(GLUE_JOB, (glue_name, glue_text, 0, KERNEL_COST[0] * self.glue_size))]
        built = compile_all(jobs, self._compile_one, cost=self._cost, min_child_cost=MIN_CHILD_COST)
        glue = built.pop(GLUE_JOB)
        for key, code in built.items():
            if key in self.texts:
                _remember(key, (dict(self.texts[key][2]), code), _TIER0)
        out = {**self.tier0_objects, **built}
        return glue, [self.objects[k] for k in sorted(self.objects)] + [out[k] for k in sorted(out)]

    def _jobs(self, level: int | None = None) -> list:
        """[(key, (name, IR text, opt level, cost))] of the kernels and glue parts not at hand, each at its
        own opt level, or all at `level`; costs in fork_compile's units (a part's text is printed already)."""
        jobs = []
        for key, (name, text, _, own) in sorted(self.texts.items()):
            if key not in self.objects:
                at = own if level is None else level
                jobs.append((key, (name, text, at, KERNEL_COST[at] * text.size)))
        for key, (name, text, own, cost) in sorted(self.parts.items()):
            if key not in self.objects:
                at = own if level is None else level
                jobs.append((key, (name, text, at, cost * GLUE_COST[at] / GLUE_COST[own])))
        return jobs

    def pending_cost(self) -> float:
        """The LLVM work compile() has left (fork_compile's units): the glue and what is not at hand."""
        return sum(job[3] for _, job in self._jobs()) + self._glue_cost()

    def _describe(self, key, job) -> tuple:
        """A job as plain data for another process: (key, name, IR text, opt level, calls)."""
        calls = self.texts[key][2] if key in self.texts else {}
        return key, job[0], str(job[1]), job[2], dict(calls)

    def _compile_one(self, job) -> bytes:
        name, text, opt_level, _ = job
        return CodeLibrary(name, str(text), self.target, opt_level).emit_jit_object()

    @staticmethod
    def _cost(job) -> float:
        return job[3]

    def _glue_cost(self) -> float:
        level = self.glue_opt_levels[0] if self.glue_opt_levels else 2
        return GLUE_COST.get(level, 2) * self.glue_size

    def manifest(self) -> dict:
        """{key: name} of every kernel the code needs: what a persisted JIT entry must find again."""
        return {k: self.names[k] for k in sorted(set(self.objects) | self.used_promised | self.handed)}

    def needed(self) -> dict:
        """{key: calls {name: key}} of every kernel the code calls (at hand or to compile), after codegen."""
        out = {key: dict(calls) for key, (_, _, calls, _) in self.texts.items()}
        for key in set(self.objects) - set(out):
            entry = _lookup(key, None)          # pinned kernels are in this process's table
            if entry is None:
                return {}                       # (evicted meanwhile: promise nothing rather than too little)
            out[key] = dict(entry[0])
        return out


class KernelText:
    """A kernel's module text, printed when it is compiled: in the forked child for the child's share,
    so that llvmlite's printer (~0.2 s for a cold MLP's kernels) runs on both cores too."""

    def __init__(self, fn: ir.Function, head: str):
        self.fn, self.blocks, self.head, self.size = fn, fn.blocks, head, size(fn)

    def __str__(self) -> str:
        fn, kept = self.fn, self.fn.blocks
        fn.blocks = self.blocks          # the glue module holds a declaration; print the definition
        try:
            return self.head + str(fn)
        finally:
            fn.blocks = kept


def compile_handed(target, jobs: list, disk_cache: DiskCache | None) -> None:
    """Compile and keep (here and on disk) jobs another process handed over (KernelSet._describe's)."""
    for key, name, text, opt_level, calls in jobs:
        code = CodeLibrary(name, text, target, opt_level).emit_jit_object()
        _store(key, name, calls, code, disk_cache)


def load_objects(manifest: dict, disk_cache: DiskCache | None):
    """The kernels' objects for a persisted JIT entry, or None if any is gone (then compile anew)."""
    out = []
    for key in sorted(manifest):
        entry = _lookup(key, disk_cache)
        if entry is None:
            return None
        out.append(entry[1])
    return out


def _lookup(key: str, disk_cache: DiskCache | None):
    with _LOCK:
        hit = _MEMORY.get(key)
        if hit is not None:
            _MEMORY.move_to_end(key)
            return hit
    if disk_cache is None:
        return None
    found = disk_cache.get(key)
    if found is None or not isinstance(found[0], dict) or not isinstance(found[0].get("calls"), dict):
        return None
    entry = (dict(found[0]["calls"]), found[1])
    _remember(key, entry)
    return entry


def _store(key: str, name: str, calls: dict, code: bytes, disk_cache: DiskCache | None) -> None:
    _remember(key, (dict(calls), code))
    if disk_cache is not None:
        disk_cache.put(key, {"kernel": name, "calls": dict(calls)}, code)


def _remember(key: str, entry, table: OrderedDict = _MEMORY) -> None:
    """Keep entry in a bounded table of this process (_MEMORY, or _TIER0), the oldest going first."""
    with _LOCK:
        table[key] = entry
        table.move_to_end(key)
        while len(table) > _MEMORY_LIMIT:
            table.popitem(last=False)


def forget_in_memory() -> None:
    """Drop this process's tables (tests: make the next compile go to the disk cache or compile)."""
    with _LOCK:
        _MEMORY.clear()
        _TIER0.clear()


def opt_level(fn: ir.Function) -> int:
    """A library kernel's LLVM opt level (library_kernel's argument)."""
    return getattr(fn, "kc_opt_level", KERNEL_OPT_LEVEL)


def _callees(fn: ir.Function) -> list:
    seen = {}
    for block in fn.blocks:
        for ins in block.instructions:
            callee = getattr(ins, "callee", None)
            if isinstance(ins, ir.CallInstr) and isinstance(callee, ir.Function) and callee is not fn:
                seen.setdefault(callee.name, callee)
    return list(seen.values())
