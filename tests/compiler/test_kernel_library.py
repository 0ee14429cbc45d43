"""The kernel library: shape-generic kernels compiled once, reused by other models and processes,
keyed by everything their code depends on, rebuilt when an entry is damaged, same results."""
import numpy as np
import pytest

from kcompile.compiler import kernel_library
from kcompile.compiler.disk_cache import DiskCache
from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.compiler.jit import NativeFunction
from kcompile.compiler.kernel_library import kernel_key
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType


def _dense(k, n, name="kl"):
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", k]))
    w = b.param("w", (np.arange(k * n, dtype=np.float32).reshape(k, n) % 7 - 3) / 8)
    return b.build([b.relu(b.matmul(x, w))])


def _x(rows, k):
    return (np.arange(rows * k, dtype=np.float32).reshape(rows, k) % 5 - 2) / 4


def _compile(graph, cache=None, library=True, target=None):
    c = Compilation({"forward": graph}, "kl", CompileOptions(target=target), disk_cache=cache,
                    kernel_library=library)
    return NativeFunction(graph, c), c


@pytest.fixture(autouse=True)
def _fresh_memory():
    kernel_library.forget_in_memory()
    yield
    kernel_library.forget_in_memory()


def test_same_results_as_one_whole_module():
    g = _dense(70, 40)
    whole, _ = _compile(g, library=False)
    split, c = _compile(g)
    assert c.kernels.compiled > 0 and "kc_ukr_" not in c.native.ir_text.split("declare", 1)[0]
    for rows in (1, 13, 64):
        np.testing.assert_array_equal(split([_x(rows, 70)])[0], whole([_x(rows, 70)])[0])


def test_a_new_model_compiles_no_kernel_and_generates_no_kernel_body():
    _compile(_dense(70, 40))
    fn, c = _compile(_dense(50, 40, "other"))      # other K: the same micro-kernels, packers, tiles
    assert c.kernels.compiled == 0 and not c.kernels.texts and c.kernels.objects
    assert "define internal void @\"kc_ukr_" not in c.native.ir_text   # declarations only
    x = _x(9, 50)
    np.testing.assert_allclose(fn([x])[0], np.maximum(x @ c.entries["forward"].param_values["w"], 0), rtol=1e-5)


def test_a_new_process_takes_the_kernels_from_the_disk_cache(tmp_path):
    cache = DiskCache(tmp_path)
    _compile(_dense(70, 40), cache)
    kernel_library.forget_in_memory()                  # as a new process: only the disk remains
    fn, c = _compile(_dense(50, 40, "other"), cache)
    assert c.kernels.compiled == 0 and c.kernels.objects
    x = _x(5, 50)
    np.testing.assert_allclose(fn([x])[0], np.maximum(x @ c.entries["forward"].param_values["w"], 0), rtol=1e-5)


def test_kernel_key_follows_name_type_target_and_toolchain(monkeypatch):
    _, c = _compile(_dense(70, 40))
    key = next(iter(c.kernels.texts))
    name, fn = c.kernels.texts[key][0], None
    from llvmlite import ir
    ftype = ir.FunctionType(ir.VoidType(), [ir.IntType(64)])
    base = kernel_key(name, ftype, host_target())
    assert kernel_key(name, ftype, host_target()) == base
    assert kernel_key(name + "x", ftype, host_target()) != base
    assert kernel_key(name, ir.FunctionType(ir.VoidType(), [ir.IntType(32)]), host_target()) != base
    assert kernel_key(name, ftype, host_target().without("avx512f")) != base
    assert kernel_key(name, ftype, host_target(), opt_level=1) != base
    monkeypatch.setattr(kernel_library, "toolchain_digest", lambda: "another llvm or edited sources")
    assert kernel_key(name, ftype, host_target()) != base


def test_vectorized_micro_kernels_compile_at_their_own_opt_level():
    """The micro-kernels and tile dispatchers (vectors in our IR) at O1, the packing (LLVM vectorizes
    its scalar copies) at O3; the level is part of the key, the results are the whole module's."""
    g = _dense(70, 40)
    fn, c = _compile(g)
    levels = {name: level for name, _, _, level in c.kernels.texts.values()}
    ours = [n for n in levels if n.startswith(("kc_ukr_", "kc_tile_"))]
    assert ours and all(levels[n] == kernel_library.EXPLICIT_VECTOR_OPT_LEVEL for n in ours)
    assert any(levels[n] == kernel_library.KERNEL_OPT_LEVEL for n in levels if n.startswith("kc_pack_a"))
    whole, _ = _compile(g, library=False)
    x = _x(29, 70)
    np.testing.assert_array_equal(fn([x])[0], whole([x])[0])


def test_a_narrower_target_gets_its_own_kernels():
    wide, c1 = _compile(_dense(70, 40))
    narrow, c2 = _compile(_dense(70, 40), target=host_target().without("avx512f"))
    assert c2.kernels.compiled > 0 and not set(c1.kernels.objects) & set(c2.kernels.objects)
    np.testing.assert_allclose(narrow([_x(7, 70)])[0], wide([_x(7, 70)])[0], rtol=1e-6)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_kernel_entry_is_compiled_again(tmp_path, damage):
    cache = DiskCache(tmp_path)
    fn, c = _compile(_dense(70, 40), cache)
    expected = fn([_x(30, 70)])[0]
    victim = next(k for k, (name, *_) in sorted(c.kernels.texts.items()) if name.startswith("kc_ukr_"))
    path = cache.path(victim)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-50] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    kernel_library.forget_in_memory()
    fn2, c2 = _compile(_dense(70, 40), cache)      # the persisted code needs the victim: compile anew
    np.testing.assert_array_equal(fn2([_x(30, 70)])[0], expected)
    assert c2.stage_runs["native"] == 1 and 1 <= c2.kernels.compiled < len(c.kernels.texts)
    assert victim in c2.kernels.texts and cache.get(victim) is not None   # rebuilt and stored whole


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_kernels_built_in_a_forked_process_are_the_same_bytes():
    g = _dense(70, 40)
    _, serial = _compile(g)
    serial.native
    serial.kernels.compile(parallel=False)
    kernel_library.forget_in_memory()
    _, forked = _compile(g)
    forked.native
    ran_beside = []
    forked.kernels.compile(beside=lambda: ran_beside.append(True), parallel=True)
    assert ran_beside and len(serial.kernels.objects) >= 4
    assert forked.kernels.objects == serial.kernels.objects


def test_a_failing_child_costs_only_time(monkeypatch):
    from kcompile.compiler import fork_compile
    if not hasattr(__import__("os"), "fork"):
        pytest.skip("needs fork")
    parent = __import__("os").getpid()

    def compile_one(payload):
        if __import__("os").getpid() != parent:
            raise RuntimeError("the child breaks")
        return payload.encode()
    jobs = [(k, f"job{k}") for k in range(6)]
    assert fork_compile.compile_all(jobs, compile_one, parallel=True) == {k: f"job{k}".encode() for k in range(6)}


def test_no_fork_beside_a_runtime_with_native_thread_pools(monkeypatch):
    """Python's thread count misses XLA's and torch's native pools: with one of them imported the
    kernels compile in this process (JAX warns that fork may deadlock it)."""
    import sys
    import types
    from kcompile.compiler import fork_compile
    monkeypatch.delenv("KCOMPILE_PARALLEL_COMPILE", raising=False)
    for name in fork_compile.THREADED_RUNTIMES + fork_compile.FORK_UNSAFE:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(fork_compile.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(fork_compile.threading, "active_count", lambda: 1)
    assert fork_compile.parallel_allowed()
    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    assert not fork_compile.parallel_allowed()
    monkeypatch.delitem(sys.modules, "jax")
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", types.ModuleType("mpi4py.MPI"))   # an MPI library loaded
    assert not fork_compile.parallel_allowed()
