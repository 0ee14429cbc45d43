"""scan-constant-transposes: a scan VJP's dz @ W^T reads W transposed once, before the scan, and the
results do not change (reference interpreter, and natively on the host and on AVX2 without AVX-512)."""
import sys
from pathlib import Path

import numpy as np
import pytest

from kcompile.compiler.target import host_target
from kcompile.passes import grad_graph
from kcompile.passes.scan_transposes import scan_constant_transposes
from kcompile.runtime.reference import run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compiler"))
from native_util import assert_native_matches, runnable_target  # noqa: E402
from test_scan_native import rnn_graph, rnn_inputs  # noqa: E402

TARGETS = {"host": None, "avx2": host_target().without("avx512f")}


def rnn_grad(steps=5):
    b, _, (h, ys) = rnn_graph(steps, name="rnn_vjp")
    loss = b.add(b.reduce_sum(b.mul(ys, ys)), b.reduce_sum(h))
    return grad_graph(b.build([loss]), ["h0", "xs", "w", "u"])


def _transposed_b_consts(scan):
    body = scan.attrs["body"]
    consts = set(body.inputs[scan.attrs["num_carries"] + scan.attrs["num_xs"]:])
    return [n for n in body.nodes if n.op == "matmul" and n.attrs["transpose_b"] and n.inputs[1] in consts]


def test_the_vjp_scan_takes_its_constants_transposed():
    g = rnn_grad()
    before = [n for n in g.nodes if n.op == "scan" and _transposed_b_consts(n)]
    assert before, "the rnn VJP should read w and u transposed (dz @ w^T, dz @ u^T)"
    out = scan_constant_transposes(g)
    scans = [n for n in out.nodes if n.op == "scan"]
    assert not any(_transposed_b_consts(n) for n in scans)
    shapes = sorted(tuple(n.outputs[0].type.shape) for n in out.nodes if n.op == "transpose")
    assert shapes == [(4, 3), (4, 4)]          # w [3, 4] and u [4, 4], once each
    inputs = rnn_inputs(5)(3)
    for want, got in zip(run(g, inputs), run(out, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_scans_without_transposed_constants_are_left_alone():
    b, _, outs = rnn_graph(4, name="rnn_fwd")
    g = b.build(list(outs))
    assert [n.op for n in scan_constant_transposes(g).nodes] == [n.op for n in g.nodes]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_native_vjp_matches_reference(target):
    runnable_target(TARGETS, target)
    assert_native_matches(rnn_grad(6), rnn_inputs(6), batches=(1, 5), rtol=1e-4, atol=1e-5, target=TARGETS[target])
