"""Every ONNX-mappable op: exported one-op graphs pass the checker and strict shape inference,
and onnxruntime (CPU) reproduces the reference interpreter at batch sizes 1, 3 and 8."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from kcompile.compiler.onnx_export import export_onnx, to_onnx_model, UnsupportedOpError
from kcompile.compiler.onnx_ops import EMITTERS, UNSUPPORTED
from kcompile.ir import OPS, GraphBuilder, TensorType
from kcompile.runtime.reference import run

from onnx_op_cases import CASES, build, feeds

ort = pytest.importorskip("onnxruntime")

# onnxruntime's CPU provider has no kernel for these (op, dtype) pairs; the ONNX is still valid
# (checked below) and the comparison is skipped for them only.
ORT_MISSING_KERNELS = {("erf", "f64")}
TOLERANCE = {"f32": 1e-5, "f64": 1e-12}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _dtype_of(case):
    return case.args[0].dtype if case.op != "where" else case.args[1].dtype


def _compare(graph, sess, inputs):
    want = run(graph, inputs)
    got = sess.run(None, inputs)
    for w, g, t in zip(want, got, (v.type for v in graph.outputs)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"ORT gave {g.dtype}{g.shape}, reference {w.dtype}{w.shape}"
        tol = TOLERANCE.get(t.dtype.name)
        if tol is None:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=0, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_matches_reference(case, tmp_path):
    graph = build(case)
    model = to_onnx_model(graph)
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    path = export_onnx(graph, tmp_path / "op.onnx")
    if (case.op, _dtype_of(case)) in ORT_MISSING_KERNELS:
        pytest.skip(f"onnxruntime CPU has no {case.op} kernel for {_dtype_of(case)}")
    sess = _session(path)
    batched = any(a.shape and isinstance(a.shape[0], str) for a in case.args + case.unused if not a.param)
    for batch in (1, 3, 8) if batched else (1,):
        _compare(graph, sess, feeds(case, batch, seed=batch))


def test_every_op_has_a_mapping_or_a_reason():
    missing = sorted(set(OPS) - set(EMITTERS) - set(UNSUPPORTED))
    assert not missing, f"ops with neither an ONNX mapping nor an 'unsupported' entry: {missing}"
    assert not set(EMITTERS) & set(UNSUPPORTED)
    assert set(EMITTERS) | set(UNSUPPORTED) <= set(OPS), "mappings for ops that are not in the registry"


def test_every_mapped_op_has_a_case():
    covered = {c.op for c in CASES} | {"constant"}  # constant: test_constant below
    assert sorted(set(EMITTERS) - covered) == []


def test_unsupported_op_raises_naming_it(tmp_path, monkeypatch):
    """Every op has an ONNX form today; an op declared unsupported must fail clearly, writing nothing."""
    monkeypatch.delitem(EMITTERS, "tanh")
    monkeypatch.setitem(UNSUPPORTED, "tanh", "it is declared unsupported for this test")
    b = GraphBuilder("g")
    with b.location("act"):
        y = b.tanh(b.relu(b.input("x", TensorType(["N", 3]))))
    with pytest.raises(UnsupportedOpError, match="node 'act' \\(tanh\\): op 'tanh' cannot be exported to ONNX: "
                                                 "it is declared unsupported for this test"):
        export_onnx(b.build([y]), tmp_path / "op.onnx")
    assert list(tmp_path.iterdir()) == []


def test_constant(tmp_path):
    b = GraphBuilder("const")
    x = b.input("x", TensorType(["N", 3], "f32"))
    c = b.constant(np.array([[1.5, -2.0, 3.25]], np.float32))
    g = b.build([b.add(x, c), b.constant(np.arange(4, dtype=np.int64))], ["sum", "literal"])
    sess = _session(export_onnx(g, tmp_path / "c.onnx"))
    for batch in (1, 3, 8):
        _compare(g, sess, {"x": np.random.default_rng(batch).normal(size=(batch, 3)).astype(np.float32)})


@pytest.mark.parametrize("opset", [19, 20, 21])
def test_newer_opsets(opset, tmp_path):
    case = next(c for c in CASES if c.id == "conv2d-same-s2")
    graph = build(case)
    path = export_onnx(graph, tmp_path / "op.onnx", opset=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset
    _compare(graph, _session(path), feeds(case, 3))


def test_batch_symbol_without_batched_input_is_refused(tmp_path):
    b = GraphBuilder("lonely")
    y = b.broadcast_to(b.param("p", np.ones(3, np.float32)), shape=("N", 3))
    with pytest.raises(UnsupportedOpError, match="no graph input has a batch dimension"):
        export_onnx(b.build([y]), tmp_path / "m.onnx")


def test_bad_opset():
    with pytest.raises(ValueError, match="opset 13 is not supported"):
        to_onnx_model(build(CASES[0]), opset=13)


def test_random_uniform_like_is_bit_exact(tmp_path):
    """Dropout masks through ONNX are the reference's, bit for bit, for any counter."""
    b = GraphBuilder("noise")
    x = b.input("x", TensorType(["N", 33, 7]))
    counter = b.input("counter", TensorType((), "i64"))
    g = b.build([b.random_uniform_like(x, counter, seed=12345)], ["u"])
    sess = _session(export_onnx(g, tmp_path / "noise.onnx"))
    for batch, c in ((1, 0), (5, 2**32 + 7), (8, -3), (3, 2**63 - 1)):
        feeds = {"x": np.zeros((batch, 33, 7), np.float32), "counter": np.array(c, np.int64)}
        np.testing.assert_array_equal(sess.run(None, feeds)[0], run(g, feeds)[0])


def test_patches_copies_inf_and_nan_exactly(tmp_path):
    """patches exports as Pad + Gather (a copy): inf and NaN reach exactly their own output slots, as
    in the reference (a one-hot Conv would spread inf * 0 = NaN into neighbouring channels)."""
    case = next(c for c in CASES if c.op == "patches" and c.label == "2d-same")
    graph = build(case)
    sess = _session(export_onnx(graph, tmp_path / "patches.onnx"))
    inputs = feeds(case, 2, seed=0)
    x = inputs[graph.inputs[0].name]
    x[0, 1, 2, 0], x[1, 3, 4, 2], x[1, 0, 0, 1] = np.inf, -np.inf, np.nan
    (got,), (want,) = sess.run(None, inputs), run(graph, inputs)
    np.testing.assert_array_equal(got, want)   # NaN == NaN position by position
    assert np.isinf(want).any() and np.isnan(want).any()
