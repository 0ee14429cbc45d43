"""The IR's golden per-op cases (tests/ir/ir_op_cases.py), reused here: each one-op graph, with
static shapes and with the symbolic batch N, exported to ONNX; onnxruntime must reproduce the
reference interpreter (f32 within 1e-5, f64 within 1e-12, integers and booleans exactly)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from kcompile.compiler.onnx_export import export_onnx
from kcompile.compiler.onnx_ops import UNSUPPORTED
from kcompile.runtime.reference import run

ort = pytest.importorskip("onnxruntime")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ir"))
from ir_op_cases import CASES  # noqa: E402
from ir_util import concretize, one_op_graph  # noqa: E402
from kcompile.ir import TensorType  # noqa: E402

ORT_MISSING_KERNELS = {("erf", "float64"), ("conv2d", "float64")}   # valid ONNX; onnxruntime's CPU provider lacks the kernel
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
GOLDEN = [c for c in CASES if c.op not in UNSUPPORTED]


@pytest.mark.parametrize("case", GOLDEN, ids=lambda c: c.id)
def test_golden_case_through_onnx(case, tmp_path):
    if case.arrays and (case.op, str(case.arrays[0].dtype)) in ORT_MISSING_KERNELS:
        pytest.skip(f"onnxruntime CPU has no {case.op} kernel for {case.arrays[0].dtype}")
    for batched in dict.fromkeys([(), case.batched]):
        types = [TensorType((("N",) + a.shape[1:]) if i in batched else a.shape, a.dtype)
                 for i, a in enumerate(case.arrays)]
        graph = one_op_graph(case.op, types, case.attrs if batched else concretize(case.attrs, case.arrays))
        feeds = {v.name: np.asarray(a) for v, a in zip(graph.inputs, case.arrays)}
        path = export_onnx(graph, tmp_path / f"op{len(batched)}.onnx")
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
        for g, w in zip(got, run(graph, case.arrays)):
            assert (g.dtype, g.shape) == (w.dtype, w.shape), f"batched={batched}"
            if w.dtype in TOLERANCE:
                scale = max(1.0, float(np.abs(w).max()) if w.size else 0.0)  # relative beyond magnitude 1
                np.testing.assert_allclose(g, w, rtol=0, atol=TOLERANCE[w.dtype] * scale,
                                           err_msg=f"batched={batched}")
            else:
                np.testing.assert_array_equal(g, w, err_msg=f"batched={batched}")
