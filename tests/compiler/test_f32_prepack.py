"""prepack-f32 (passes/f32_prepack.py, ir/f32_panels.py): float32 dense weights streamed from panels packed
once per weight version. Results equal the unpacked GEMM's bit for bit; a packed copy never outlives its
weights (set_weights, assign, in-place training steps, an artifact's set_weights and train_step)."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.artifact import write_artifact
from kcompile.compiler.driver import Compilation, CompileOptions, graph_pipeline
from kcompile.compiler.jit import NativeFunction, compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder, TensorType, print_graph
from kcompile.ir.f32_panels import pack_weights, packed_name, parse_packed_name
from kcompile.passes.f32_prepack import prepack_f32
from kcompile.runtime import load

TARGETS = [None, host_target().without("avx512f")]   # the host's widest path and AVX2 (NR 16 / 8 lanes)


def _naive_pack(b, nr):
    """The layout as ir/f32_panels.py states it, element by element."""
    k, n = b.shape
    panels = -(-n // nr)
    out = np.zeros(panels * k * nr, np.float32)
    for p in range(panels):
        for kk in range(k):
            for j in range(nr):
                if p * nr + j < n:
                    out[(p * k + kk) * nr + j] = b[kk, p * nr + j]
    return out


@pytest.mark.parametrize("k,n,nr,transposed", [(5, 7, 16, False), (9, 40, 32, False), (3, 32, 16, True),
                                               (4, 17, 8, True)])
def test_pack_weights_matches_the_layout_definition(k, n, nr, transposed):
    b = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    w = b.T.copy() if transposed else b
    np.testing.assert_array_equal(pack_weights(w, nr, transposed), _naive_pack(b, nr))
    out = np.full(_naive_pack(b, nr).size, np.nan, np.float32)   # a repack writes every element
    np.testing.assert_array_equal(pack_weights(w, nr, transposed, out), _naive_pack(b, nr))
    assert parse_packed_name(packed_name("d/kernel", nr, transposed)) == ("d/kernel", nr, transposed)


def _dense_graph(k, n, transpose_b=False, updated=False, seed=0):
    rng = np.random.default_rng(seed)
    b = GraphBuilder("dense_pp")
    x = b.input("x", TensorType(["N", k]))
    w = b.param("w", rng.standard_normal((n, k) if transpose_b else (k, n)).astype(np.float32))
    bias = b.param("bias", rng.standard_normal(n).astype(np.float32))
    y = b.relu(b.add(b.matmul(x, w, transpose_b=transpose_b), bias))
    if updated:
        b.meta["param_updates"] = {"new_w": "w"}
        return b.build([y, b.mul(w, b.constant(0.5))], ["y", "new_w"])
    return b.build([y], ["y"])


def test_the_pass_adds_a_packed_companion_only_where_it_may():
    g = prepack_f32(_dense_graph(20, 40), lanes=16)
    name = packed_name("w", 32, False)
    assert [p.param_name for p in g.params][-1] == name and name in print_graph(g)   # --emit shows it
    np.testing.assert_array_equal(g.param_values[name], pack_weights(g.param_values["w"], 32, False))
    assert prepack_f32(_dense_graph(20, 8, transpose_b=True), lanes=16).params[-1].param_name == \
        packed_name("w", 16, True)
    trained = _dense_graph(20, 40, updated=True)
    assert prepack_f32(trained, lanes=16) is trained      # updated in place by this graph: never packed
    assert prepack_f32(_dense_graph(20, 40), lanes=0).params[-1].param_name == "bias"


def _unpacked(graph, target):
    """The same graph compiled without prepack-f32 (the GEMM reads or packs B per call)."""
    passes = tuple(p for p in graph_pipeline(3, target=target or host_target()) if not p.startswith("prepack-f32"))
    return NativeFunction(graph, Compilation({"forward": graph}, "unpacked", CompileOptions(passes=passes,
                                                                                           target=target)))


@pytest.mark.parametrize("target", TARGETS, ids=["host", "avx2"])
@pytest.mark.parametrize("k,n,transpose_b", [(300, 512, False), (37, 10, False), (50, 33, True), (7, 70, False),
                                               (784, 512, False)])
def test_packed_results_equal_unpacked_bitwise(target, k, n, transpose_b):
    """Bit for bit where both take K in one block (K <= KC = 384); a longer K is one block of up to
    PREPACKED_KC = 1024 when prepacked (kernels/gemm.py), so the sums are grouped otherwise there."""
    graph = _dense_graph(k, n, transpose_b)
    same = np.testing.assert_array_equal if k <= 384 else \
        (lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max()))
    packed, plain = compile_graph(graph, target=target), _unpacked(graph, target)
    assert any(parse_packed_name(s.name) for s in packed._slots)
    assert not any(parse_packed_name(s.name) for s in plain._slots)
    assert packed.compilation.cache_key != plain.compilation.cache_key   # the pipeline names prepack-f32
    rng = np.random.default_rng(1)
    for m in (1, 2, 3, 8, 13, 64, 200, 257):   # wide tile, tile heights, batch chunks, M past 2 MC blocks
        x = rng.standard_normal((m, k)).astype(np.float32)
        got, want = packed([x])[0], plain([x])[0]
        same(got, want)
        np.testing.assert_array_equal(packed.plan(nthreads=1)([x])[0], got)
    np.testing.assert_allclose(got, np.maximum(x @ (graph.param_values["w"].T if transpose_b
                                                    else graph.param_values["w"]) + graph.param_values["bias"], 0),
                               rtol=1e-4, atol=1e-4)


def test_another_weight_array_and_an_in_place_step_are_packed_anew():
    graph = _dense_graph(30, 40)
    fn = compile_graph(graph)
    x = np.random.default_rng(2).standard_normal((16, 30)).astype(np.float32)
    w = np.random.default_rng(3).standard_normal((30, 40)).astype(np.float32)
    plan = fn.plan({"w": w, "bias": np.zeros(40, np.float32)}, nthreads=1)
    bound = fn.bind({"w": w, "bias": np.zeros(40, np.float32)})   # (evaluate's test step is bound once)
    np.testing.assert_allclose(plan([x])[0], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bound([x])[0], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)
    step = compile_graph(_dense_graph(30, 40, updated=True))
    step([x], {"w": w, "bias": np.zeros(40, np.float32)})   # w *= 0.5 in place, in native code
    np.testing.assert_allclose(plan([x])[0], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bound([x])[0], np.maximum(x @ w, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fn([x], {"w": w, "bias": np.zeros(40, np.float32)})[0], np.maximum(x @ w, 0),
                               rtol=1e-5, atol=1e-5)


def _mlp():
    model = kc.Sequential([kc.layers.Input((24,)), kc.layers.Dense(40, activation="relu"),
                           kc.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _forward(model, x):
    w0, b0, w1, b1 = model.get_weights()
    z = np.maximum(x @ w0 + b0, 0) @ w1 + b1
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_front_end_predict_sees_set_weights_and_training_steps():
    model, rng = _mlp(), np.random.default_rng(4)
    x, y = rng.standard_normal((64, 24)).astype(np.float32), rng.integers(0, 10, 64)
    np.testing.assert_allclose(model.predict_on_batch(x), _forward(model, x), rtol=1e-5, atol=1e-6)
    model.set_weights([w * 1.5 for w in model.get_weights()])
    np.testing.assert_allclose(model.predict_on_batch(x), _forward(model, x), rtol=1e-5, atol=1e-6)
    before = model.predict_on_batch(x)
    model.train_on_batch(x, y)                  # native code writes the kernels in place
    after = model.predict_on_batch(x)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, _forward(model, x), rtol=1e-5, atol=1e-6)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    np.testing.assert_allclose(model.predict_on_batch(x), _forward(model, x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), _forward(model, x), rtol=1e-5, atol=1e-6)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="reference")
    model.train_on_batch(x, y)                  # the NumPy backend copies the updates into the same arrays
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", backend="native")
    np.testing.assert_allclose(model.predict_on_batch(x), _forward(model, x), rtol=1e-5, atol=1e-6)


def _sgd_artifact(tmp_path, train=True):
    """forward: relu(x @ w + bias); train_step: w -= 0.5 * w, in place."""
    forward, step = _dense_graph(20, 40), _dense_graph(20, 40, updated=True)
    return load(write_artifact(forward, tmp_path / "pp", "pp", train_step=step.with_param_values({}) if train else None))


def test_a_training_artifact_packs_no_weight_its_train_step_updates(tmp_path):
    """Its entries share one parameter block: a C program calling pp_train_step and then pp_forward
    (no Python to repack) must not read a packed copy of w from before the step."""
    model = _sgd_artifact(tmp_path)
    assert not any(parse_packed_name(p["name"]) for p in model.manifest["params"])
    x = np.random.default_rng(5).standard_normal((8, 20)).astype(np.float32)
    model.train_step(x)
    w, bias = model.get_weights()
    np.testing.assert_allclose(model.predict(x), np.maximum(x @ w + bias, 0), rtol=1e-5, atol=1e-5)


def test_artifact_repacks_after_set_weights(tmp_path):
    model = _sgd_artifact(tmp_path, train=False)
    assert model.weight_names == ["w", "bias"]
    assert any(parse_packed_name(p["name"]) for p in model.manifest["params"])
    x = np.random.default_rng(5).standard_normal((8, 20)).astype(np.float32)

    def expect():
        w, bias = model.get_weights()
        return np.maximum(x @ w + bias, 0)

    np.testing.assert_allclose(model.predict(x), expect(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model(x), expect(), rtol=1e-5, atol=1e-5)
    model.set_weights({"w": np.ones((20, 40), np.float32)})
    np.testing.assert_allclose(model.predict(x), expect(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.predict(x, batch_size=3), expect(), rtol=1e-5, atol=1e-5)
