"""The pass manager: registry, pipeline strings with options, verification, timings and IR dumps."""
import io

import pytest

from kcompile.ir import Graph, GraphBuilder, TensorType
from kcompile.passes import PASSES, PassError, PassManager, parse_pipeline, register_pass
from kcompile.passes.manager import format_timings


def _graph():
    b = GraphBuilder("g")
    x = b.input("x", TensorType(("N", 3)))
    b.exp(x)  # dead: for dce
    y = b.mul(b.neg(b.neg(x)), b.constant(1.0))
    return b.build([b.add(y, b.exp(x))])


def test_builtin_passes_are_registered():
    assert {"canonicalize", "cse", "dce", "fold-constants", "simplify"} <= set(PASSES)
    assert all(p.doc for p in PASSES.values())


def test_pipeline_runs_in_order_and_reports():
    g, report = PassManager("simplify, cse,dce", verify_each=True).run(_graph())
    assert [n.op for n in g.nodes] == ["exp", "add"]
    assert report["pipeline"] == ["simplify", "cse", "dce"]
    assert [r["name"] for r in report["passes"]] == ["simplify", "cse", "dce"]
    assert report["passes"][0]["nodes_before"] == 7 and report["passes"][-1]["nodes_after"] == 2
    assert all(r["seconds"] >= 0 for r in report["passes"]) and report["total_seconds"] >= 0


def test_timings_table_is_printed_on_request():
    out = io.StringIO()
    _, report = PassManager(["canonicalize"], timings=True, stream=out).run(_graph())
    assert "canonicalize" in out.getvalue() and out.getvalue() == format_timings(report) + "\n"


def test_pipeline_options_and_registration_of_new_passes():
    seen = {}

    @register_pass("test-rename")
    def rename(graph: Graph, name: str = "x", twice: bool = False) -> Graph:
        """Rename the graph (test pass)."""
        seen.update(name=name, twice=twice)
        return Graph(name * (2 if twice else 1), graph.inputs, graph.params, graph.nodes, graph.outputs,
                     graph.param_values, graph.output_names, graph.meta)

    try:
        assert parse_pipeline("dce,test-rename{name=ab,twice=true},cse") == [
            ("dce", {}), ("test-rename", {"name": "ab", "twice": True}), ("cse", {})]
        g, _ = PassManager("test-rename{name=ab,twice=true}").run(_graph())
        assert g.name == "abab" and seen == {"name": "ab", "twice": True}
        with pytest.raises(PassError, match="bad options"):
            PassManager("test-rename{colour=red}").run(_graph())
        with pytest.raises(PassError, match="registered twice"):
            register_pass("test-rename")(lambda graph: graph)
    finally:
        PASSES.pop("test-rename")


def test_unknown_pass_and_bad_names_are_clear_errors():
    with pytest.raises(PassError, match=r"unknown pass 'nope'; known passes: .*canonicalize"):
        PassManager("dce,nope")
    with pytest.raises(PassError, match="kebab-case"):
        register_pass("Bad_Name")
    with pytest.raises(PassError, match="key=value"):
        parse_pipeline("dce{oops}")


def test_verify_each_names_the_pass_that_broke_the_graph():
    @register_pass("test-break")
    def breaks(graph: Graph) -> Graph:
        """Drop every node but keep the outputs (invalid)."""
        return Graph(graph.name, graph.inputs, graph.params, [], graph.outputs, graph.param_values)

    try:
        broken = breaks(_graph())
        with pytest.raises(PassError, match="before the pipeline"):
            PassManager("dce", verify_each=True).run(broken)
        PassManager("test-break").run(_graph())  # without verification the bad graph goes through
        with pytest.raises(PassError, match="after pass 'test-break'.*not defined"):
            PassManager("test-break", verify_each=True).run(_graph())
    finally:
        PASSES.pop("test-break")


def test_print_ir_after_all_dumps_each_pass_or_says_the_printer_is_missing():
    from kcompile.ir.text import print_graph

    out = io.StringIO()
    pm = PassManager("simplify,dce", print_ir_after_all=True, stream=out)
    try:
        print_graph(_graph())
    except NotImplementedError:
        with pytest.raises(PassError, match="IR text printer"):
            pm.run(_graph())
        return
    g, _ = pm.run(_graph())
    text = out.getvalue()
    assert "IR after simplify" in text and "IR after dce" in text and text.rstrip().endswith(print_graph(g).rstrip())


def test_passes_never_mutate_their_input():
    g = _graph()
    nodes, outputs = g.nodes, g.outputs
    PassManager("canonicalize,simplify,cse,dce,fold-constants").run(g)
    assert g.nodes == nodes and g.outputs == outputs
