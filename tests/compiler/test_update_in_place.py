"""Parameter updates written straight into their parameters (passes/update_in_place.py): which ones
plan-memory picks, and that a train step doing so equals the copying step bit for bit, at 1 and 2
threads, and the reference interpreter within float tolerance."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.cli.train import train_step_graph
from kcompile.compiler.driver import Compilation, CompileOptions
from kcompile.compiler.jit import NativeFunction, c_symbol
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes import PassManager, memory
from kcompile.passes.memory import format_memory
from kcompile.runtime.reference import run

RNG = np.random.default_rng(7)
X = RNG.standard_normal((24, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 24).astype(np.float32)


def _step(optimizer: str):
    model = kc.Sequential([layers.Dense(20, activation="relu", input_shape=(6,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return train_step_graph(model, None, None)


def _planned(graph):
    return PassManager(["canonicalize", "fuse", "plan-memory"]).run(graph)[0]


def _compile(graph):
    """Not through compile_graph: its caches are keyed by the graph, not by how it was planned."""
    return NativeFunction(graph, Compilation({"forward": graph}, c_symbol(graph.name), CompileOptions(3),
                                             disk_cache=None, kernel_library=True))


def _train(fn, graph, params: dict, nthreads: int) -> list:
    losses = []
    for it in range(3):
        rows = slice(8 * it, 8 * it + 8)
        state = [np.array(0, np.int64), np.array(0.01, np.float32), np.array(it, np.float32)]
        losses.append(fn([X[rows], Y[rows], *state], params, nthreads=nthreads)[0])
    return losses


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_in_place_step_equals_the_copying_step(optimizer, monkeypatch):
    graph = _step(optimizer)
    planned = _planned(graph)
    updated = set(graph.meta["param_updates"].values())
    assert set(planned.meta["memory"].in_place.values()) == updated   # every weight and slot, here
    assert "in place of param" in format_memory(planned)
    start = {p.param_name: graph.param_values[p.param_name] for p in graph.params}
    runs = {}
    for mode in ("in place", "copied"):
        if mode == "copied":
            monkeypatch.setattr(memory, "in_place_updates", lambda graph, home: {})
            assert not _planned(graph).meta["memory"].in_place
        fn = _compile(graph)
        for nthreads in (1, 2):
            params = {k: v.copy() for k, v in start.items()}
            runs[mode, nthreads] = (_train(fn, graph, params, nthreads), params)
    first_losses, first_params = runs["in place", 1]
    for key, (losses, params) in runs.items():
        assert [float(a) for a in losses] == [float(a) for a in first_losses], key
        for name in start:
            np.testing.assert_array_equal(params[name], first_params[name], err_msg=f"{key}: {name}")
    ref = {k: v.copy() for k, v in start.items()}
    for it in range(3):
        rows = slice(8 * it, 8 * it + 8)
        state = [np.array(0, np.int64), np.array(0.01, np.float32), np.array(it, np.float32)]
        outs = run(graph, [X[rows], Y[rows], *state], params=ref)
        named = dict(zip(graph.output_names, outs))
        ref.update({p: named[o] for o, p in graph.meta["param_updates"].items()})
    for name in start:
        np.testing.assert_allclose(first_params[name], ref[name], rtol=2e-4, atol=2e-5, err_msg=name)


def _sgd_graph(later_read: bool = False, broadcast_after: bool = False, returned: bool = False):
    b = GraphBuilder("sgd")
    x = b.input("x", TensorType(["N", 3]))
    w = b.param("w", np.arange(6, dtype=np.float32).reshape(3, 2) / 6)
    v = b.param("v", np.ones(2, np.float32))
    lr = b.input("__learning_rate", TensorType([]))
    grad = b.matmul(x, b.matmul(x, w), transpose_a=True)
    new_w = b.sub(w, b.mul(grad, lr))
    new_v = b.add(v, b.reduce_sum(grad, axes=(0,)))
    outs, names = [new_w, new_v], ["new_w", "new_v"]
    if broadcast_after:                 # v read (broadcast) by new_w's node, after new_v's
        new_w = outs[0] = b.sub(w, b.mul(grad, b.add(v, lr)))
    if later_read:                      # w read after its update was written
        outs.append(b.reduce_sum(b.square(w)))
        names.append("after")
    if returned:
        outs.append(v)
        names.append("v_out")
    b.meta["param_updates"] = {"new_w": "w", "new_v": "v"}
    return b.build(outs, names)


@pytest.mark.parametrize("case, expected", [
    ({}, {"w", "v"}),
    ({"later_read": True}, {"v"}),      # a later node reads w: copied after the last node as before
    ({"returned": True}, {"w"}),        # v is returned too: its old value must survive the step
    ({"broadcast_after": True}, {"w"}),
])
def test_which_updates_are_written_in_place(case, expected):
    graph = _sgd_graph(**case)
    planned = _planned(graph)
    assert set(planned.meta["memory"].in_place.values()) == expected
    start = {p.param_name: graph.param_values[p.param_name] for p in graph.params}
    native = {k: v.copy() for k, v in start.items()}
    xs, lr = X[:5, :3].copy(), np.array(0.1, np.float32)
    got = _compile(graph)([xs, lr], native)
    want = run(graph, [xs, lr], params={k: v.copy() for k, v in start.items()})
    named = dict(zip(graph.output_names, want))
    for out, param in graph.meta["param_updates"].items():
        np.testing.assert_allclose(native[param], named[out], rtol=1e-5, atol=1e-6)
    for a, b in zip(got, [o for o, n in zip(want, graph.output_names) if n not in graph.meta["param_updates"]]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
