"""kcompile.ir.text.parse_graph on fuzzed text; a graph that parses must print and parse back to
the same text (the round-trip promise of the text form), else it is a finding."""
from __future__ import annotations

from pathlib import Path

from fuzz.harness import Finding, expect_clear_errors

MAX_LEN = 1 << 13


def seeds(fixtures: Path) -> list:
    from fuzz.seed_models import ir_texts
    return [t.encode() for t in ir_texts()]


def setup(fixtures: Path, scratch: Path):
    from kcompile.ir.text import parse_graph, print_graph

    def one_input(data: bytes) -> None:
        graph = expect_clear_errors(parse_graph, data.decode("utf-8", "replace"))
        if graph is None:
            return
        text = print_graph(graph)
        again = print_graph(parse_graph(text))
        if again != text:
            raise Finding(f"print(parse(print(g))) != print(g):\n{text}\n---\n{again}")
    return one_input
