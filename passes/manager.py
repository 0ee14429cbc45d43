"""The pass manager: passes registered by kebab-case name, run as a pipeline with timings, checks and IR dumps."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable

from kcompile.ir import Graph, verify
from kcompile.ir.errors import IRError

_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Pass:
    """A registered pass: `fn(graph, **options) -> Graph` under a kebab-case name."""

    name: str
    fn: Callable
    doc: str


PASSES: dict[str, Pass] = {}


class PassError(IRError):
    """An unknown pass, a bad pipeline string or option, or a pass that broke the graph."""


def register_pass(name: str, doc: str | None = None):
    """Decorator: register `fn(graph, **options) -> Graph` as the pass `name` (e.g. "plan-memory")."""
    if not _KEBAB.match(name):
        raise PassError(f"pass name {name!r} must be kebab-case, like 'fold-constants'")

    def register(fn):
        if name in PASSES and PASSES[name].fn is not fn:
            raise PassError(f"pass '{name}' is registered twice ({PASSES[name].fn.__module__} and {fn.__module__})")
        summary = doc or (inspect.getdoc(fn) or "").split("\n")[0]
        PASSES[name] = Pass(name, fn, summary)
        return fn
    return register


def get_pass(name: str) -> Pass:
    failures = _import_all_pass_modules() if name not in PASSES else []
    if name not in PASSES:
        broken = f" (modules that failed to import: {'; '.join(failures)})" if failures else ""
        raise PassError(f"unknown pass '{name}'; known passes: {', '.join(sorted(PASSES))}{broken}")
    return PASSES[name]


def _import_all_pass_modules() -> list[str]:
    """Passes register on import, so import every module of kcompile.passes; returns import failures."""
    package = sys.modules[__name__.rsplit(".", 1)[0]]
    failures = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception as e:  # a broken sibling module must not hide the passes that do load
            failures.append(f"{info.name}: {type(e).__name__}: {e}")
    return failures


def parse_pipeline(pipeline) -> list[tuple[str, dict]]:
    """'a,b{k=v,flag=true},c' (or a list of such items) -> [(name, options), ...]."""
    items = pipeline if isinstance(pipeline, (list, tuple)) else _split_top_level(pipeline)
    steps = []
    for item in items:
        m = re.fullmatch(r"\s*([A-Za-z0-9_-]+)\s*(?:\{(.*)\})?\s*", item)
        if not m:
            raise PassError(f"bad pipeline item {item!r}; expected name or name{{key=value,...}}")
        steps.append((m.group(1), _parse_options(m.group(2) or "", m.group(1))))
    return steps


def _split_top_level(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for ch in text:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    return [i for i in items if i.strip()]


def _parse_options(text: str, name: str) -> dict:
    options = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise PassError(f"pass '{name}': option {part!r} must be key=value")
        options[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return options


def _parse_value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


class PassManager:
    """Runs a pipeline of named passes; `run(graph)` returns (new graph, report dict with timings)."""

    def __init__(self, pipeline, verify_each: bool = False, print_ir_after_all: bool = False,
                 timings: bool = False, stream=None):
        self.steps = [(get_pass(name), options) for name, options in parse_pipeline(pipeline)]
        self.verify_each = verify_each
        self.print_ir_after_all = print_ir_after_all
        self.timings = timings
        self.stream = stream
        self.last_report: dict | None = None

    def run(self, graph: Graph) -> tuple[Graph, dict]:
        records, start = [], time.perf_counter()
        if self.verify_each:
            self._verify(None, graph)
        for p, options in self.steps:
            before = len(graph.nodes)
            t0 = time.perf_counter()
            graph = self._run_one(p, options, graph)
            records.append({"name": p.name, "options": options, "seconds": time.perf_counter() - t0,
                            "nodes_before": before, "nodes_after": len(graph.nodes)})
            if self.verify_each:
                self._verify(p, graph)
            if self.print_ir_after_all:
                self._dump(p, graph)
        report = {"pipeline": [p.name for p, _ in self.steps], "passes": records,
                  "total_seconds": time.perf_counter() - start}
        self.last_report = report
        if self.timings:
            print(format_timings(report), file=self.stream or sys.stderr)
        return graph, report

    @staticmethod
    def _run_one(p: Pass, options: dict, graph: Graph) -> Graph:
        try:
            inspect.signature(p.fn).bind(graph, **options)
        except TypeError as e:
            raise PassError(f"pass '{p.name}': bad options {options} ({e})") from None
        out = p.fn(graph, **options)
        if not isinstance(out, Graph):
            raise PassError(f"pass '{p.name}' returned {type(out).__name__}, expected a Graph")
        return out

    @staticmethod
    def _verify(p: Pass | None, graph: Graph):
        try:
            verify(graph)
        except IRError as e:
            where = f"after pass '{p.name}'" if p else "before the pipeline (the input graph)"
            raise PassError(f"{where}: {e}") from None

    def _dump(self, p: Pass, graph: Graph):
        from kcompile.ir.text import print_graph
        try:
            text = print_graph(graph)
        except NotImplementedError:
            raise PassError("print_ir_after_all needs the IR text printer (kcompile.ir.text.print_graph), "
                            "which is not implemented yet") from None
        print(f"// ----- IR after {p.name} ----- //\n{text}", file=self.stream or sys.stdout)


def format_timings(report: dict) -> str:
    """A per-pass timing table, like MLIR's -mlir-timing report."""
    total = report["total_seconds"] or 1e-12
    lines = ["===- pass execution timing report -===", f"  total: {total * 1e3:.3f} ms",
             "   wall ms   share  nodes        pass"]
    for r in report["passes"]:
        lines.append(f"{r['seconds'] * 1e3:10.3f} {100 * r['seconds'] / total:6.1f}%  "
                     f"{r['nodes_before']:5d}->{r['nodes_after']:<5d} {r['name']}")
    return "\n".join(lines)
