"""Cold-compile mechanisms: part of the glue in a module of its own (glue_split.py), the forked
helper's balanced shares (fork_compile.py), kernels printed only when compiled, and the compile
cache's cheap writes (no fsync, no folder scan per entry). Results must not change."""
import os

import numpy as np
import pytest

from kcompile.compiler import fork_compile, kernel_library
from kcompile.compiler.disk_cache import DiskCache
from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.compiler.jit import NativeFunction
from kcompile.ir import GraphBuilder, TensorType


def _mlp(name="cl"):
    """Dense-relu, dense, softmax: GEMM drivers and noinline elementwise/softmax workers in the glue."""
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", 30]))
    w1 = b.param("w1", (np.arange(30 * 40, dtype=np.float32).reshape(30, 40) % 7 - 3) / 8)
    w2 = b.param("w2", (np.arange(40 * 10, dtype=np.float32).reshape(40, 10) % 5 - 2) / 8)
    h = b.relu(b.matmul(x, w1))
    return b.build([b.softmax(b.add(b.matmul(h, w2), b.constant(np.float32(0.5))))])


def _x(rows):
    return (np.arange(rows * 30, dtype=np.float32).reshape(rows, 30) % 5 - 2) / 4


def _compile(graph, helper=False, library=True, cache=None, monkeypatch=None):
    if helper:      # as where a forked helper compiles beside this process
        monkeypatch.setattr("kcompile.compiler.driver.parallel_allowed", lambda: True)
    c = Compilation({"forward": graph}, "cl", CompileOptions(), disk_cache=cache, kernel_library=library)
    return NativeFunction(graph, c), c


@pytest.fixture(autouse=True)
def _fresh_memory(monkeypatch):
    monkeypatch.setattr("kcompile.compiler.driver.parallel_allowed", lambda: False)
    kernel_library.forget_in_memory()
    yield
    kernel_library.forget_in_memory()


def _moved(text):
    return [line.split("@", 1)[1].split("(")[0] for line in text.splitlines() if line.startswith("define")]


def test_the_vectorized_loops_get_o2_the_rest_of_the_glue_o1_same_results():
    g = _mlp()
    whole, _ = _compile(g, library=False)
    split, c = _compile(g)
    (name, text, opt, cost), = c.kernels.parts.values()   # no helper: only the part for LLVM's vectorizer
    assert name == "cl_vec" and opt == 2 and cost > 0 and c.library.opt_level == 1
    assert any("softmax" in sym for sym in _moved(text))  # scalar exp/sum loops
    assert not any("softmax" in line and line.startswith("define") for line in c.native.ir_text.splitlines())
    for sym in _moved(text):       # the main module declares what moved, defines it nowhere else
        assert f"declare void @{sym}(" in c.native.ir_text and f"define void @{sym}(" not in c.native.ir_text
    for rows in (1, 13, 64):
        np.testing.assert_array_equal(split([_x(rows)])[0], whole([_x(rows)])[0])


def test_with_a_helper_about_half_the_rest_is_a_part_too(monkeypatch):
    g = _mlp()
    expected = _compile(g, library=False)[0]([_x(13)])[0]
    fn, c = _compile(g, helper=True, monkeypatch=monkeypatch)
    parts = {name: (opt, _moved(text)) for name, text, opt, _ in c.kernels.parts.values()}
    assert set(parts) == {"cl_vec", "cl_part"} and parts["cl_part"][0] == 1 and parts["cl_part"][1]
    assert not set(parts["cl_vec"][1]) & set(parts["cl_part"][1])
    np.testing.assert_array_equal(fn([_x(13)])[0], expected)


def test_glue_parts_are_kept_and_found_like_kernels(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path)
    fn, c = _compile(_mlp(), helper=True, cache=cache, monkeypatch=monkeypatch)
    expected = fn([_x(9)])[0]
    assert len(c.kernels.parts) == 2
    for part in c.kernels.parts:
        assert part in c.kernels.manifest() and cache.get(part) is not None
    kernel_library.forget_in_memory()                     # a new process: the persisted entry needs the parts
    fn2, c2 = _compile(_mlp(), cache=cache)
    np.testing.assert_array_equal(fn2([_x(9)])[0], expected)
    assert c2.persisted is not None and c2.stage_runs["native"] == 0


def test_kernel_texts_are_printed_when_compiled_and_leave_declarations():
    _, c = _compile(_mlp())
    c.native
    name, text, *_ = next(v for v in c.kernels.texts.values() if v[0].startswith("kc_ukr_"))
    printed = str(text)
    assert f'define void @"{name}"(' in printed and printed.startswith('target triple')
    assert f'declare void @"{name}"(' in c.native.ir_text and str(text) == printed   # printing twice: same


def test_shares_balance_the_cost_and_count_what_runs_beside():
    jobs = [(k, c) for k, c in enumerate([50, 40, 30, 20, 10])]
    theirs, ours = fork_compile._shares(jobs, lambda c: c, beside_cost=60)
    assert sorted(theirs + ours) == jobs
    child, parent = sum(c for _, c in theirs), sum(c for _, c in ours) + 60
    assert abs(child - parent) <= 10 and theirs[0] == (0, 50)     # the costliest first, to the idle child


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_no_child_for_a_share_below_the_minimum(monkeypatch):
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked for too little work"))
    jobs = [(k, f"job{k}") for k in range(3)]
    out = fork_compile.compile_all(jobs, str.encode, parallel=True, cost=lambda p: 1, min_child_cost=5)
    assert out == {k: f"job{k}".encode() for k in range(3)}


def test_cache_stays_within_its_bound_without_a_scan_per_entry(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path, limit=3000)
    scans = []
    real = DiskCache.entries
    monkeypatch.setattr(DiskCache, "entries", lambda self: scans.append(1) or real(self))
    for i in range(3):
        cache.put(f"{i:02x}small", {}, b"x" * 100)
    assert len(scans) == 1                                # the first write scans, the next fit the bound
    for i in range(10):
        cache.put(f"{i:02x}big", {}, b"y" * 1000)
    assert sum(size for _, size, _ in real(cache)) <= 3000


@pytest.mark.parametrize("ty, value, count", [("f32", 1.5, 37), ("f64", -0.0, 5), ("i8", 3, 70), ("f32", 0.0, 19)])
def test_fill_stores_every_element_and_no_more(ty, value, count):
    """loops.fill: zeros by memset, other constants by 32-byte vector stores and a scalar tail."""
    import ctypes
    from llvmlite import ir
    from kcompile.compiler.codelib import CodeLibrary
    from kcompile.compiler.loops import I64, fill
    from kcompile.compiler.target import host_target
    lty = {"f32": ir.FloatType(), "f64": ir.DoubleType(), "i8": ir.IntType(8)}[ty]
    module = ir.Module("fill")
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [lty.as_pointer(), I64]), "fill_it")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    fill(b, fn.args[0], fn.args[1], ir.Constant(lty, value))
    b.ret_void()
    engine = CodeLibrary("fill", str(module), host_target(), 1).jit()
    out = np.full(count + 3, 7, dtype={"f32": np.float32, "f64": np.float64, "i8": np.int8}[ty])
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(engine.address("fill_it"))(out.ctypes.data, count)
    assert (out[:count] == value).all() and (np.signbit(out[:count]) == np.signbit(value)).all()
    assert (out[count:] == 7).all()


def test_recurrent_and_attention_glue_keep_o2():
    """A scan's cell (once per time step inside the entry) and the fused attention kernel (emitted per
    shape into the glue) are compiled at O2 (at O1 the BiLSTM and Transformer benchmarks' forwards ran
    13 % and 6 % slower); a graph with neither at O1."""
    import kcompile as kc
    from kcompile.compiler.driver import GLUE_OPT_LEVEL, GLUE_VECTORIZED_OPT_LEVEL
    inp = kc.Input((6, 8))
    attention = kc.Model(inp, kc.layers.MultiHeadAttention(2, 4)(inp, inp)).forward_graph()
    rnn = kc.Sequential([kc.Input((5, 3)), kc.layers.LSTM(4)]).forward_graph()
    dense = kc.Sequential([kc.Input((3,)), kc.layers.Dense(4)]).forward_graph()
    levels = [Compilation({"forward": g}, "lvl", kernel_library=True)._module_opt_level() for g in (rnn, attention, dense)]
    assert levels == [GLUE_VECTORIZED_OPT_LEVEL] * 2 + [GLUE_OPT_LEVEL] and GLUE_OPT_LEVEL < GLUE_VECTORIZED_OPT_LEVEL
