"""compile_graph: caching by structure, parameters per call, threads, denormal flushing, codegen quality."""
import threading

import numpy as np
import pytest

from kcompile.compiler.jit import NativeError, compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime.reference import run


def _graph(scale=1.0, name="g"):
    b = GraphBuilder(name)
    x = b.input("x", TensorType(["N", 11]))
    w = b.param("w", np.full(11, scale, np.float32))
    return b.build([b.sigmoid(b.mul(x, w))])


def test_cache_is_by_structure_not_parameter_values():
    f1, f2 = compile_graph(_graph(1.0)), compile_graph(_graph(2.0))
    assert f1.compilation is f2.compilation  # compiled once
    x = np.ones((2, 11), np.float32)
    np.testing.assert_allclose(f2([x])[0], run(_graph(2.0), [x])[0], rtol=2e-6)
    np.testing.assert_allclose(f1([x], {"w": np.full(11, 3.0, np.float32)})[0],
                               run(_graph(), [x], {"w": np.full(11, 3.0, np.float32)})[0], rtol=2e-6)
    with pytest.raises(ValueError, match="parameter 'w'"):
        f1([x], {"w": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="expected"):
        f1([np.ones((2, 10), np.float32)])
    assert "llvm-optimize" in f1.compilation.report()


def test_concurrent_compiles_and_calls():
    graphs = [_graph(1.0 + k, name=f"t{k}") for k in range(3)]
    results, errors = {}, []

    def work(k):
        try:
            fn = compile_graph(graphs[k])
            x = np.random.default_rng(k).standard_normal((5 + k, 11)).astype(np.float32)
            for _ in range(10):
                results[k] = (fn([x], nthreads=1 + k % 2)[0], run(graphs[k], [x])[0])
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in results.values():
        np.testing.assert_allclose(got, want, rtol=2e-6)


def test_denormals_are_flushed_inside_native_code_only():
    b = GraphBuilder("tiny")
    x = b.input("x", TensorType([4]))
    g = b.build([b.mul(x, b.constant(1e-30))])
    got = compile_graph(g)([np.full(4, 1e-10, np.float32)])[0]
    assert np.all(got == 0)  # 1e-40 is a denormal: flushed to zero
    assert np.float32(1e-38) * np.float32(0.01) != 0  # Python/NumPy keep their own mode


def test_inner_loops_use_the_hosts_vector_registers(monkeypatch):
    # without the forked helper: it takes half the glue (this loop included) into a part of its own,
    # whose assembly is not the glue module's (compiler/glue_split.py); a process that imported JAX
    # never forks, so the test passed or failed by which files ran before it
    monkeypatch.setenv("KCOMPILE_PARALLEL_COMPILE", "0")
    fn = compile_graph(_graph(name="vec"))
    asm = fn.compilation.assembly
    bits = host_target().vector_bits          # 512 on Zen with AVX-512, 256 on other AVX parts
    reg = {512: "zmm", 256: "ymm"}.get(bits, "xmm")
    assert reg in asm


def test_gather_error_status_is_raised():
    b = GraphBuilder("emb")
    idx = b.input("idx", TensorType(["N"], "i64"))
    g = b.build([b.gather(b.param("table", np.eye(3, dtype=np.float32)), idx)])
    with pytest.raises(NativeError, match="out of range"):
        compile_graph(g)([np.array([0, 3])])


def test_large_elementwise_loops_split_into_pool_tasks():
    b = GraphBuilder("big")
    x = b.input("x", TensorType(["N", 1000]))
    row = b.input("row", TensorType(["N", 1]))
    flat = b.tanh(b.mul(x, x))                        # one coalesced run: tasks over chunks of it
    rows = b.add(b.exp(b.neg(b.square(x))), row)      # two runs: tasks over rows
    g = b.build([flat, rows])
    fn = compile_graph(g)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((n, 1000)).astype(np.float32) for n in (100, 3)]
    for x_ in xs:
        r_ = rng.standard_normal((len(x_), 1)).astype(np.float32)
        single, multi = fn([x_, r_], nthreads=1), fn([x_, r_], nthreads=4)
        for a, m, want in zip(single, multi, run(g, [x_, r_])):
            np.testing.assert_array_equal(a, m)
            np.testing.assert_allclose(a, want, rtol=2e-6, atol=1e-6)


def test_softmax_rows_split_into_pool_tasks():
    b = GraphBuilder("big_softmax")
    x = b.input("x", TensorType(["N", 300, 200]))
    g = b.build([b.softmax(x, axis=-1), b.log_softmax(x, axis=1)])
    fn = compile_graph(g)
    xs = np.random.default_rng(6).standard_normal((3, 300, 200)).astype(np.float32)
    single, multi = fn([xs], nthreads=1), fn([xs], nthreads=4)
    for a, m, want in zip(single, multi, run(g, [xs])):
        np.testing.assert_array_equal(a, m)
        np.testing.assert_allclose(a, want, rtol=3e-6, atol=2e-6)


def test_row_reductions_split_into_pool_tasks():
    b = GraphBuilder("big_reduce")
    x = b.input("x", TensorType(["N", 300, 200]))
    g = b.build([b.reduce_sum(b.square(x), axes=(2,)), b.reduce_max(x, axes=(1,)), b.reduce_mean(x, axes=(0, 2))])
    fn = compile_graph(g)
    xs = np.random.default_rng(7).standard_normal((3, 300, 200)).astype(np.float32)
    single, multi = fn([xs], nthreads=1), fn([xs], nthreads=4)
    for a, m, want in zip(single, multi, run(g, [xs])):
        np.testing.assert_array_equal(a, m)
        np.testing.assert_allclose(a, want, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("opt_level", [0, 2])
def test_every_opt_level_computes_the_same(opt_level):
    b = GraphBuilder("levels")
    x = b.input("x", TensorType(["N", 9]))
    w = b.param("w", np.linspace(-1, 1, 36, dtype=np.float32).reshape(9, 4))
    g = b.build([b.softmax(b.tanh(b.add(b.matmul(x, w), b.constant(1.0)))), b.reduce_sum(b.exp(x), axes=(1,))])
    xs = np.random.default_rng(8).standard_normal((3, 9)).astype(np.float32)
    for got, want in zip(compile_graph(g, opt_level=opt_level)([xs]), run(g, [xs])):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_graphs_without_inputs_and_constant_or_parameter_outputs():
    b = GraphBuilder("no_inputs")
    p = b.param("p", np.arange(6, dtype=np.float32).reshape(2, 3))
    g = b.build([b.exp(p), b.constant(np.array([1, 2, 3], np.int32)), p, b.reshape(p, shape=(3, 2))])
    for got, want in zip(compile_graph(g)([]), run(g, [])):
        np.testing.assert_allclose(got, want, rtol=2e-6)
        assert got.dtype == want.dtype


def test_parameters_are_passed_by_pointer_and_updates_land_in_the_callers_arrays():
    b = GraphBuilder("inplace")
    x = b.input("x", TensorType(["N", 4]))
    w = b.param("w", np.zeros(4, np.float32))
    loss = b.reduce_sum(b.mul(x, w))
    b.meta["param_updates"] = {"new_w": "w"}
    g = b.build([loss, b.add(w, b.reduce_mean(x, axes=(0,)))], ["loss", "new_w"])
    fn = compile_graph(g)
    w_arr = np.ones(4, np.float32)
    xs = np.arange(8, dtype=np.float32).reshape(2, 4)
    (got_loss,) = fn([xs], {"w": w_arr})
    assert got_loss == xs.sum()
    np.testing.assert_array_equal(w_arr, 1 + xs.mean(0))  # updated in place, not returned
