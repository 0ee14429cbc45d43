"""A dynamic sequence length natively: one compile runs every length (JIT, artifact, CLI, front end),
the memory plan has terms in N, T and N*T, bad lengths are named, and ops that need a static T are
refused by name (the front end then compiles per length)."""
import ctypes
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import kcompile as kc
import kcompile.compiler.jit as jit
from kcompile.compiler.artifact import write_artifact
from kcompile.compiler.dynamic_dims import DynamicDimError
from kcompile.compiler.jit import compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir.signature import SignatureError
from kcompile.passes.memory import format_memory
from kcompile.runtime import load
from kcompile.runtime.reference import run

from native_util import random_array

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
from test_scan_native import rnn_graph  # noqa: E402

L = kc.layers


@pytest.fixture
def compiles(monkeypatch):
    """The names of the Compilations the JIT starts (one per compile of a new graph structure)."""
    names = []

    class Counting(jit.Compilation):
        def __init__(self, *args, **kwargs):
            names.append(args[1])
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(jit, "Compilation", Counting)
    jit._CACHE.clear()
    return names


def randomized(model, seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * scale for w in model.get_weights()])
    return model


def stacked():
    inp = kc.Input(shape=(None, 3))
    x = L.LSTM(5, return_sequences=True)(inp)
    x = L.GRU(4, return_sequences=True)(x)
    return randomized(kc.Model(inp, L.TimeDistributed(L.Dense(2))(x)))


def masked_bilstm():
    inp = kc.Input(shape=(None,), dtype="int32")
    x = L.Embedding(20, 4, mask_zero=True)(inp)
    x = L.Bidirectional(L.LSTM(3, return_sequences=True))(x)
    return randomized(kc.Model(inp, L.Dense(1)(L.GlobalAveragePooling1D()(x))))


def tokens(n, steps, seed=0):
    t = np.random.default_rng(seed).integers(1, 20, (n, steps)).astype(np.int32)
    t[0, max(1, steps // 2):] = 0   # a padded row (never all padding: Keras's mean would be 0/0)
    return t


@pytest.mark.parametrize("target", [None, host_target().without("avx512f")], ids=["host", "avx2"])
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_with_a_symbolic_trip_count_runs_every_length_from_one_compile(compiles, reverse, target):
    b, _, outs = rnn_graph("T", reverse, name=f"rnn_dyn_{int(reverse)}")
    graph = b.build(list(outs))
    fn = compile_graph(graph, target=target)
    for steps, batch in ((1, 2), (4, 1), (13, 3)):
        rng = np.random.default_rng(steps)
        xs = [random_array(rng, s, np.float32, -1, 1) for s in [(batch, 4), (batch, steps, 3), (3, 4), (4, 4)]]
        for got, want in zip(fn(xs), run(graph, xs)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert compiles == [graph.name] and fn.compilation.stage_runs["native"] == 1


@pytest.mark.parametrize("build,make", [(stacked, lambda n, t: np.random.default_rng(t).standard_normal(
    (n, t, 3)).astype(np.float32)), (masked_bilstm, tokens)], ids=["stacked", "masked_bilstm"])
def test_models_native_equal_reference_at_several_lengths(compiles, build, make):
    model = build()
    graph = model.forward_graph()
    fn = compile_graph(graph)
    bound = fn.bind(graph.param_values)   # the training loop's call path too
    for steps in (2, 7, 3):
        x = make(3, steps)
        want = run(graph, [x])[0]
        np.testing.assert_allclose(fn([x])[0], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bound([x])[0], want, rtol=1e-5, atol=1e-6)
    assert len(compiles) == 1


def test_memory_plan_has_terms_in_n_and_t():
    planned = compile_graph(stacked().forward_graph()).compilation.planned["forward"]
    plan = planned.meta["memory"]
    assert ("N", "T") in dict(plan.terms)   # the LSTM's sequence output, [N,T,5], is an intermediate
    text = format_memory(planned)
    assert text.startswith(f"// workspace = {dict(plan.terms)[('N', 'T')]}*N*T + ") and "*N*T" in text
    small, big = plan.workspace_bytes(2, {"T": 3}), plan.workspace_bytes(2, {"T": 30})
    assert big - small == 27 * 2 * dict(plan.terms)[("N", "T")]


def test_artifact_runs_two_lengths_and_checks_input_shapes(tmp_path):
    a, b = kc.Input(shape=(None, 2), name="a"), kc.Input(shape=(None, 2), name="b")
    model = randomized(kc.Model([a, b], L.GRU(3, return_sequences=True)(L.Add()([a, b]))))
    graph = model.forward_graph()
    cm = load(write_artifact(graph, tmp_path / "art", "gru2"))
    spec = cm.manifest["entry_points"]["forward"]
    assert spec["symbols"] == {"T": [[0, 1], [1, 1]]} and spec["outputs"][0]["shape"] == ["N", "T", 3]
    assert "const int64_t *input_shapes" in (tmp_path / "art" / "gru2.h").read_text()
    for steps in (3, 11):
        rng = np.random.default_rng(steps)
        xs = [rng.standard_normal((2, steps, 2)).astype(np.float32) for _ in range(2)]
        np.testing.assert_allclose(cm.predict(xs), run(graph, xs)[0], rtol=1e-5, atol=1e-6)
    x3, x4 = np.zeros((2, 3, 2), np.float32), np.zeros((2, 4, 2), np.float32)
    with pytest.raises(SignatureError, match=r"input 'b'.*dimension 1 \(T\) is 4, but another input binds T = 3"):
        cm.predict([x3, x4])
    with pytest.raises(SignatureError, match=r"dynamic dimension\(s\) T are 0"):
        cm.predict([np.zeros((2, 0, 2), np.float32)] * 2)
    # a C caller that lies about the shapes gets the status code, and nothing runs
    entry, shapes = cm._entries["forward"], (ctypes.c_int64 * 6)(2, 3, 2, 2, 4, 2)
    ins = (ctypes.c_void_p * 2)(x3.ctypes.data, x4.ctypes.data)
    out = np.full((2, 3, 3), 7, np.float32)
    outs = (ctypes.c_void_p * 1)(out.ctypes.data)
    ws = np.zeros(1 << 16, np.uint8)
    status = entry.fn(ins, outs, cm._params.ctypes.data, ws.ctypes.data, 2, 1, shapes)
    assert cm.manifest["status_codes"][str(status)].startswith("input_shapes disagree") and (out == 7).all()
    size_fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(ctypes.c_int64))(
        cm._code.address(spec["workspace_symbol"]))
    assert size_fn(2, shapes) == -1
    assert size_fn(2, (ctypes.c_int64 * 6)(2, 9, 2, 2, 9, 2)) == entry.workspace_bytes(2, {"T": 9})


def test_cli_runs_one_artifact_at_two_lengths(tmp_path, capsys):
    from kcompile.cli import main
    src = tmp_path / "m.py"
    src.write_text("import kcompile as kc\ni = kc.Input(shape=(None, 3))\n"
                   "x = kc.layers.LSTM(4, return_sequences=True)(i)\n"
                   "model = kc.Model(i, kc.layers.TimeDistributed(kc.layers.Dense(2))(x))\n")
    assert main([str(src), "-o", str(tmp_path / "out"), "--emit", "so,opt"]) == 0
    assert "*N*T + " in capsys.readouterr().out.split("arena:")[1].splitlines()[0]   # the report's arena
    opt = next((tmp_path / "out").glob("*.opt.kir")).read_text()
    assert "// workspace = " in opt and "*N*T + " in opt.split("// workspace = ")[1].splitlines()[0]
    assert main(["inspect", str(tmp_path / "out")]) == 0
    assert "*N*T + " in capsys.readouterr().out.split("workspace: ")[1].splitlines()[0]
    for steps in (5, 40):
        np.save(tmp_path / "x.npy", np.ones((2, steps, 3), np.float32))
        assert main(["run", str(tmp_path / "out"), "--input", str(tmp_path / "x.npy"),
                     "--output", str(tmp_path / "y.npy")]) == 0
        assert np.load(tmp_path / "y.npy").shape == (2, steps, 2)


def test_an_op_that_needs_a_static_length_is_refused_by_name_and_predict_compiles_per_length(compiles):
    inp = kc.Input(shape=(None, 3))
    model = randomized(kc.Model(inp, L.GRU(2)(L.Softmax(axis=1)(inp))))   # softmax over the time axis
    with pytest.raises(DynamicDimError, match=r"node 'softmax(_[0-9]+)?'.*symbolic dimension\(s\) T .* reach 'softmax'"):
        compile_graph(model.forward_graph())
    model.compile("sgd", "mse", backend="native")
    for steps in (4, 6):
        x = np.random.default_rng(steps).standard_normal((2, steps, 3)).astype(np.float32)
        np.testing.assert_allclose(model.predict(x, verbose=0), run(model.forward_graph(), [x])[0],
                                   rtol=1e-5, atol=1e-6)
    assert len(compiles) == 2 + 2   # two refused tries (codegen stops before LLVM), then one compile per length


def test_fit_evaluate_predict_compile_once_and_equal_the_reference(compiles):
    results = {}
    for backend in ("native", "reference"):
        inp = kc.Input(shape=(None, 3))
        model = randomized(kc.Model(inp, L.Dense(1)(L.LSTM(4)(inp))), scale=0.3)
        model.compile("adam", "mse", backend=backend)
        out = []
        for steps in (4, 9, 4):
            rng = np.random.default_rng(steps)
            x, y = rng.random((6, steps, 3)).astype(np.float32), rng.random((6, 1)).astype(np.float32)
            out += model.fit(x, y, epochs=2, batch_size=3, verbose=0, shuffle=False).history["loss"]
            out += [model.evaluate(x, y, verbose=0), *model.predict(x, verbose=0).ravel()]
        results[backend] = np.array(out, np.float64)
    np.testing.assert_allclose(results["native"], results["reference"], rtol=1e-5, atol=1e-6)
    assert len(compiles) == 3   # the train step, the test step and predict: once each for all lengths


def sequence_tagger():
    inp = kc.Input(shape=(None, 3))
    return kc.Model(inp, L.TimeDistributed(L.Dense(2))(L.GRU(4, return_sequences=True)(inp)))


@pytest.mark.parametrize("build,make", [
    (sequence_tagger, lambda r, t: (r.random((6, t, 3)).astype(np.float32), r.random((6, t, 2)).astype(np.float32))),
    (masked_bilstm, lambda r, t: (tokens(6, t, t), r.random((6, 1)).astype(np.float32)))],
    ids=["targets_over_T", "pooling_over_T"])
def test_training_that_reduces_over_the_length_compiles_once(compiles, build, make):
    """Losses and layers that reduce over T: their gradients broadcast back through zeros shaped at run
    time (passes/grad_rules/_emit.py), so the train step has no T in any attribute."""
    results = {}
    for backend in ("native", "reference"):
        model = randomized(build(), scale=0.3)
        model.compile("adam", "mse", backend=backend)
        out = []
        for steps in (4, 9):
            x, y = make(np.random.default_rng(steps), steps)
            out += model.fit(x, y, epochs=2, batch_size=3, verbose=0, shuffle=False).history["loss"]
            out.append(model.evaluate(x, y, verbose=0))
        results[backend] = np.array(out, np.float64)
    np.testing.assert_allclose(results["native"], results["reference"], rtol=1e-5, atol=1e-6)
    assert len(compiles) == 2   # the train step and the test step, once each for both lengths


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_native_predictions_match_keras_at_two_lengths_from_one_compile(compiles, layer):
    os.environ.setdefault("KERAS_BACKEND", "jax")   # (before Keras is first imported; the other parity tests do the same)
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("Keras parity tests need KERAS_BACKEND=jax")

    def build(M):
        inp = M.Input(shape=(None, 3))
        return M.Model(inp, getattr(M.layers, layer)(4, return_sequences=True)(inp))
    ours = randomized(build(kc))
    theirs = build(keras)
    theirs.set_weights(ours.get_weights())
    ours.compile("sgd", "mse", backend="native")
    for steps in (3, 25):
        x = np.random.default_rng(steps).standard_normal((2, steps, 3)).astype(np.float32)
        np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert len(compiles) == 1
    empty = np.zeros((2, 0, 3), np.float32)   # an empty sequence: an error in both (Keras 3: an IndexError)
    with pytest.raises(SignatureError, match=r"dynamic dimension\(s\) T are 0 \(an empty sequence\)"):
        ours.predict(empty, verbose=0)
    with pytest.raises(IndexError):
        theirs.predict(empty, verbose=0)


def test_training_artifact_steps_at_two_lengths_like_the_reference(tmp_path):
    inp = kc.Input(shape=(None, 3))
    model = randomized(kc.Model(inp, L.Dense(1)(L.GRU(4)(inp))), scale=0.3)
    model.compile("sgd", "mse")
    y = np.random.default_rng(1).random((4, 1)).astype(np.float32)
    step = model.train_step_graph(y)
    assert step.inputs[0].type.shape == ("N", "T", 3)
    cm = load(write_artifact(model.forward_graph(), tmp_path / "art", "gru_train", train_step=step))
    params = dict(step.param_values)
    updates = step.meta["param_updates"]
    for k, steps in enumerate((3, 12)):
        x = np.random.default_rng(steps).random((4, steps, 3)).astype(np.float32)
        feed = {"__rng_counter": np.int64(k), "__learning_rate": np.float32(0.1), "__iterations": np.float32(k)}
        want = dict(zip(step.output_names, run(step, [feed.get(v.name, a) for v, a in
                                                      zip(step.inputs, [x, y, None, None, None])], params)))
        outs = cm.train_step(x, y, learning_rate=0.1)
        np.testing.assert_allclose(outs[0] if isinstance(outs, list) else outs, want["loss"], rtol=1e-5)
        for out, name in updates.items():
            params[name] = want[out]
        got = dict(zip(cm.weight_names, cm.get_weights()))
        assert len(set(updates.values()) & set(got)) == len(model.get_weights())   # every weight compared
        for name in set(updates.values()) & set(got):
            np.testing.assert_allclose(got[name], params[name], rtol=1e-5, atol=1e-6)


def test_gradients_of_reductions_over_the_length_match_finite_differences():
    from kcompile.ir import GraphBuilder, TensorType
    from kcompile.passes import grad_graph
    b = GraphBuilder("reduce_t")
    x, w = b.input("x", TensorType(["N", "T", 3], "f64")), b.input("w", TensorType([3], "f64"))
    per_step = b.reduce_mean(b.mul(b.tanh(x), w), axes=(2,))            # [N,T]: unbroadcast over T
    loss = b.reduce_sum(b.mul(b.reduce_mean(per_step, axes=(1,)), b.reduce_sum(x, axes=(1, 2))))
    graph = grad_graph(b.build([loss]), ["x", "w"])
    fn = compile_graph(graph)
    rng = np.random.default_rng(0)
    for steps in (1, 5):
        xv, wv = rng.standard_normal((2, steps, 3)), rng.standard_normal(3)
        want = run(graph, [xv, wv])
        for got, ref in zip(fn([xv, wv]), want):
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
        eps, fd = 1e-6, np.zeros_like(xv)
        for i in np.ndindex(xv.shape):
            hi, lo = xv.copy(), xv.copy()
            hi[i] += eps
            lo[i] -= eps
            fd[i] = (run(graph, [hi, wv])[0] - run(graph, [lo, wv])[0]) / (2 * eps)
        np.testing.assert_allclose(want[1], fd, rtol=1e-6, atol=1e-8)
