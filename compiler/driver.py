"""The compile pipeline: canonicalize -> fuse -> plan-memory (pass manager) -> lower/codegen -> LLVM."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from kcompile.ir import Graph
from kcompile.passes.manager import PassManager

from .codegen import NativeModule, generate
from .codelib import CodeLibrary
from .target import host_target


def graph_pipeline(opt_level: int) -> list:
    """Pass names in order; opt level 0 skips the optimizing rewrites, never the memory plan."""
    return (["canonicalize", "fuse"] if opt_level > 0 else []) + ["plan-memory"]


@dataclass
class CompileResult:
    module: NativeModule
    library: CodeLibrary
    graphs: dict                          # entry kind -> planned Graph
    timings: dict = field(default_factory=dict)

    def report(self) -> str:
        """Per-stage compile times, one per line."""
        width = max(len(k) for k in self.timings)
        total = sum(self.timings.values())
        lines = [f"{k:<{width}}  {1e3 * t:8.2f} ms" for k, t in self.timings.items()]
        return "\n".join(lines + [f"{'total':<{width}}  {1e3 * total:8.2f} ms"])


def prepare(graph: Graph, opt_level: int = 3, timings: dict | None = None, verify_each: bool = False) -> Graph:
    """Run the graph passes, adding each pass's time to `timings`."""
    graph, report = PassManager(graph_pipeline(opt_level), verify_each=verify_each).run(graph)
    if timings is not None:
        for r in report["passes"]:
            timings[f"{r['name']} (@{graph.name})"] = r["seconds"]
    return graph


def compile_entries(entries: dict, name: str, opt_level: int = 3, verify_each: bool = False,
                    target=None) -> CompileResult:
    """Graphs by entry kind ('forward', 'train_step') -> generated, optimized LLVM code.

    target: the host by default; a narrower one (host_target().without(...)) runs here too."""
    target = target or host_target()
    timings: dict = {}
    planned = {kind: prepare(g, opt_level, timings, verify_each) for kind, g in entries.items()}
    t0 = time.perf_counter()
    native = generate(planned, name, target)
    timings["lower+codegen"] = time.perf_counter() - t0
    library = CodeLibrary(name, native.ir_text, target, opt_level)
    library.module  # parse, verify and optimize now, so that the timings are complete
    timings.update(library.timings)
    return CompileResult(native, library, planned, timings)
