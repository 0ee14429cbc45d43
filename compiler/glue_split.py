"""Part of the JIT's glue module moved into a module of its own, so two processes can compile it.

A cold train step's glue (the entry, GEMM drivers, elementwise and reduction workers) is one LLVM
module: ~0.7 s of LLVM on one core while the other core idles (kernel_library.py compiles the
kernels, fork_compile.py shares them between two processes; the glue was one job). Its worker
functions are `noinline` (each runs as a task of the thread launcher or is called once): LLVM
optimizes each on its own, so moving some into a second module leaves their code as it was. The
moved functions become external (the entry's module declares them; MCJIT links the objects in one
engine, as it links the kernels'); private constants they use are copied, other globals they use
become external and are declared. Anything carrying metadata stays (none does today).
"""
from __future__ import annotations

import re

from llvmlite import ir

_GLOBAL_REF = re.compile(r'@"((?:[^"\\]|\\.)*)"|@([-\w$.]+)')
_METADATA_REF = re.compile(r"![\w.\"]")
_LOCAL = ("internal", "private")


def size(fn: ir.Function) -> int:
    """A function's instruction count: what its LLVM time grows with."""
    return sum(len(b.instructions) for b in fn.blocks)


def movable(fn: ir.Function) -> bool:
    return bool(fn.blocks) and "noinline" in fn.attributes and not getattr(fn, "kc_library_kernel", False)


_SCALAR_MATH = {"fadd", "fsub", "fmul", "fdiv", "frem", "fneg", "fcmp"}


def needs_vectorizer(fn: ir.Function) -> bool:
    """Scalar floating-point work outside the tails of explicitly vectorized loops: loops LLVM's loop
    vectorizer (O2) may make several times faster, where O1 would leave them scalar (softmax's, the
    reductions'); a function without is compiled at O1 to the same machine code in less time."""
    for block in fn.blocks:
        if "tail" in block.name:            # the scalar remainder of an explicitly vectorized loop
            continue
        for ins in block.instructions:
            ty = ins.type
            if ins.opname in _SCALAR_MATH and not isinstance(ty, ir.VectorType) \
                    and not isinstance(getattr(ins.operands[0], "type", None), ir.VectorType):
                return True
            if ins.opname == "store" and isinstance(ins.operands[0].type, (ir.FloatType, ir.DoubleType)):
                return True
            if ins.opname == "call" and isinstance(ty, (ir.FloatType, ir.DoubleType)):
                return True
    return False


def largest_half(functions: list, share: float = 0.5) -> list:
    """The largest functions, up to `share` of all the instructions."""
    total, moved, budget = 0, [], share * sum(size(f) for f in functions)
    for fn in sorted((f for f in functions if movable(f)), key=size, reverse=True):
        if total + size(fn) <= budget:
            moved.append(fn)
            total += size(fn)
    return moved


def split_glue(module: ir.Module, pick=largest_half) -> tuple:
    """Move the movable functions pick(defined functions) chooses into a new module, leaving
    declarations in `module`: (its text, its instruction count), or (None, 0)."""
    defined = [f for f in module.functions if f.blocks]
    moved = [f for f in pick(defined) if movable(f)]
    texts, linkages = {}, {fn.name: fn.linkage for fn in moved}
    for fn in moved:
        fn.linkage = ""                     # defined there, declared here
        text = str(fn)
        if _METADATA_REF.search(text):      # metadata nodes live in the module: keep such a function here
            fn.linkage = linkages[fn.name]
            continue
        texts[fn.name] = text
    names = {n for t in texts.values() for n in _references(t)} - set(texts)
    if not texts or not names <= set(module.globals):   # a reference we cannot resolve: move nothing
        for fn in moved:
            fn.linkage = linkages[fn.name]
        return None, 0
    head = [_import(module.globals[name]) for name in sorted(names)]
    count = sum(size(fn) for fn in moved if fn.name in texts)
    for fn in moved:
        if fn.name in texts:
            fn.blocks = []
    return f'target triple = "{module.triple}"\n\n' + "\n".join(head) + "\n\n" + "\n\n".join(texts.values()), count


def _references(text: str) -> set:
    return {quoted if quoted is not None and quoted != "" else bare
            for quoted, bare in _GLOBAL_REF.findall(text)} - {""}


def _import(g) -> str:
    """The part's view of a global of the glue module: a copy of a private constant, else a declaration
    (the definition made external where it was local)."""
    if isinstance(g, ir.Function):
        if g.blocks and g.linkage in _LOCAL:
            g.linkage = ""
        return declaration(g)
    if g.global_constant and g.initializer is not None and g.linkage in _LOCAL:
        return str(g)
    if g.linkage in _LOCAL:
        g.linkage = ""
    return f"{g.get_reference()} = external global {g.value_type}"


def declaration(fn: ir.Function) -> str:
    """`declare` text for a function defined in another module."""
    ft = fn.ftype
    args = ", ".join(str(a) for a in ft.args) + (", ..." if ft.var_arg else "")
    return f"declare {ft.return_type} {fn.get_reference()}({args})"
