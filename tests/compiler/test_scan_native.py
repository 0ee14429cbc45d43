"""scan compiled natively (one loop, the body compiled once) against the reference interpreter."""
import sys
from pathlib import Path

import numpy as np
import pytest

from kcompile.compiler.driver import Compilation
from kcompile.ir import GraphBuilder, TensorType
from kcompile.passes import grad_graph

from native_util import assert_native_matches, random_array

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
import ir_oracles_control as ctl  # noqa: E402


def rnn_graph(steps, reverse=False, dtype="f32", name="rnn"):
    b = GraphBuilder(name)
    h0, xs = b.input("h0", TensorType(["N", 4], dtype)), b.input("xs", TensorType(["N", steps, 3], dtype))
    w, u = b.input("w", TensorType([3, 4], dtype)), b.input("u", TensorType([4, 4], dtype))
    h, ys = b.scan(h0, xs, w, u, body=ctl.rnn_cell("N", 3, 4, dtype), num_carries=1, axis=1, reverse=reverse)
    return b, (h0, xs, w, u), (h, ys)


def rnn_inputs(steps, dtype=np.float32):
    rng = np.random.default_rng(steps)
    return lambda n: [random_array(rng, s, dtype, -1, 1) for s in [(n, 4), (n, steps, 3), (3, 4), (4, 4)]]


@pytest.mark.parametrize("steps,reverse", [(5, False), (6, True), (1, False)])
def test_batch_major_scan_matches_reference(steps, reverse):
    b, _, outs = rnn_graph(steps, reverse)
    assert_native_matches(b.build(list(outs)), rnn_inputs(steps), batches=(1, 3, 17, 0))


@pytest.mark.parametrize("reverse", [False, True])
def test_axis0_scan_with_an_integer_carry(reverse):
    b = GraphBuilder("sums")
    s, n, xs = b.input("s", TensorType([7])), b.input("n", TensorType([], "i32")), b.input("xs", TensorType([6, 7]))
    g = b.build(list(b.scan(s, n, xs, body=ctl.running_sum(7), num_carries=2, reverse=reverse)))
    rng = np.random.default_rng(0)
    assert_native_matches(g, lambda _: [random_array(rng, (7,), np.float32), np.array(3, np.int32),
                                        random_array(rng, (6, 7), np.float32)], batches=(1,))


def test_scan_gradients_compile_and_match_reference():
    """The VJP (a stored-carry forward scan and a reverse scan of the body's VJP) runs natively."""
    b, _, (h, ys) = rnn_graph(5, dtype="f64", name="rnn_grad")
    loss = b.add(b.reduce_sum(b.mul(ys, ys)), b.reduce_sum(h))
    g = grad_graph(b.build([loss]), ["h0", "xs", "w", "u"])
    assert_native_matches(g, rnn_inputs(5, np.float64), batches=(2, 5), rtol=1e-10, atol=1e-12)


def test_body_is_compiled_once_and_ir_does_not_grow_with_steps():
    sizes = []
    for steps in (4, 64):
        b, _, outs = rnn_graph(steps, name=f"rnn{steps}")
        text = Compilation({"forward": b.build(list(outs))}, f"rnn{steps}").native.ir_text
        assert text.count("define internal i32 @\"scan.cell") == 1
        sizes.append(len(text.splitlines()))
    assert sizes[0] == sizes[1], sizes  # 16x the steps, the same code (only constants differ)


def test_training_graph_runs_the_forward_loop_once():
    """merge-scans (in canonicalize): the VJP's stored-carry scan replaces the forward scan it re-ran."""
    from kcompile.passes import canonicalize
    from kcompile.runtime.reference import run
    b, _, (h, ys) = rnn_graph(4, dtype="f64", name="rnn_train")
    g = grad_graph(b.build([b.reduce_sum(b.mul(ys, ys))]), ["w", "u"])
    merged = canonicalize(g)
    assert [n.op for n in g.nodes].count("scan") == 3 and [n.op for n in merged.nodes].count("scan") == 2
    inputs = rnn_inputs(4, np.float64)(3)
    for want, got in zip(run(g, inputs), run(merged, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert_native_matches(merged, rnn_inputs(4, np.float64), batches=(3,), rtol=1e-10, atol=1e-12)


def test_scan_without_carries_or_scratch():
    """A map over axis 0 whose body writes its result directly: no carries, no workspace at all."""
    body = GraphBuilder("negate")
    x = body.input("x", TensorType([3], "f32"))
    b = GraphBuilder("map")
    xs = b.input("xs", TensorType([4, 3], "f32"))
    g = b.build([b.scan(xs, body=body.build([body.neg(x)]), num_carries=0, reverse=True)])
    rng = np.random.default_rng(0)
    assert_native_matches(g, lambda _: [random_array(rng, (4, 3), np.float32)], batches=(1,))
