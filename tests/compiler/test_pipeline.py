"""compiler.driver.Compilation: every stage computed once, a key that follows what the code depends on."""
import numpy as np

from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.ir import GraphBuilder, TensorType


def _graph(scale=1.0):
    b = GraphBuilder("pipe")
    x = b.input("x", TensorType(["N", 7]))
    return b.build([b.tanh(b.mul(x, b.param("w", np.full(7, scale, np.float32))))])


def test_stages_are_computed_once_and_in_order():
    c = Compilation({"forward": _graph()}, "pipe")
    assert c.llvm_ir and c.assembly and c.object_code and c.engine
    c.shared_library, c.llvm_ir, c.object_code, c.native, c.planned  # asked again: cached
    assert set(c.stage_runs.values()) == {1}
    assert {"planned", "native", "library", "llvm_ir", "assembly", "object_code", "engine"} <= set(c.stage_runs)
    assert list(c.timings)[:10] == ["subpixel-conv-transpose (forward)", "canonicalize (forward)",
                                   "prepack-int8 (forward)", "prepack-f32 (forward)", "fuse (forward)",
                                   "fuse-int8-pool (forward)", "fuse-conv-pool (forward)", "fuse-attention (forward)",
                                   "scan-constant-transposes (forward)", "plan-memory (forward)"]
    assert "pipe_forward" in c.assembly and "llvm-optimize" in c.report()


def test_cache_key_follows_graph_structure_and_options_not_values():
    key = Compilation({"forward": _graph(1.0)}, "pipe").cache_key
    assert Compilation({"forward": _graph(2.0)}, "pipe").cache_key == key
    assert Compilation({"forward": _graph()}, "pipe", CompileOptions(opt_level=1)).cache_key != key
    assert Compilation({"forward": _graph()}, "pipe", CompileOptions(passes="plan-memory")).cache_key != key
