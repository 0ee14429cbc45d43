"""Helpers for native-vs-reference tests: build one-op graphs, compare over several batch sizes."""
from __future__ import annotations

import numpy as np
import pytest

from kcompile.compiler.jit import compile_graph
from kcompile.compiler.target import host_target
from kcompile.ir import GraphBuilder
from kcompile.runtime.reference import run

BATCHES = (1, 3, 17)


def one_op_graph(op: str, input_types, attrs=None, name=None):
    """A graph with one node of `op` over fresh inputs x0, x1, ... (types given as TensorType)."""
    b = GraphBuilder(name or op)
    xs = [b.input(f"x{i}", t) for i, t in enumerate(input_types)]
    out = b.op(op, *xs, **(attrs or {}))
    outs = list(out) if isinstance(out, tuple) else [out]
    return b.build(outs)


def random_array(rng, shape, dtype, low=-3.0, high=3.0):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        lo = max(int(low), np.iinfo(dt).min)
        return rng.integers(lo, int(high) + 1, shape).astype(dt)
    return rng.uniform(low, high, shape).astype(dt)


def assert_native_matches(graph, make_inputs, batches=BATCHES, rtol=1e-5, atol=1e-6, params=None, target=None):
    """Compile once (for `target`, the host's by default), run at every batch size, compare each
    output with the reference interpreter."""
    fn = compile_graph(graph, target=target)
    for batch in batches:
        inputs = make_inputs(batch)
        want = run(graph, inputs, params)
        got = fn(inputs, params)
        for k, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                           err_msg=f"{graph.name} output {k} batch {batch}")
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"{graph.name} output {k} batch {batch}")
    return fn


def runnable_target(targets: dict, name: str):
    """targets[name] (None: the host), skipping the test where this CPU cannot run that path: the
    forced AVX2 target ("avx2") needs a host with AVX2."""
    if name == "avx2" and not host_target().has("avx2"):
        pytest.skip("this CPU has no AVX2")
    return targets[name]
