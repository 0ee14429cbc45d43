"""Every graph a tests/ir test builds (and verifies) also goes through the text round trip."""
import pytest

from kcompile.ir import GraphBuilder

from ir_util import roundtrip

_build = GraphBuilder.build


def _build_and_roundtrip(self, outputs, output_names=None, verify=True):
    graph = _build(self, outputs, output_names, verify)
    if verify:
        roundtrip(graph)
    return graph


@pytest.fixture(autouse=True)
def text_round_trip_every_graph(monkeypatch):
    monkeypatch.setattr(GraphBuilder, "build", _build_and_roundtrip)
