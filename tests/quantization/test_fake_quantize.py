"""fake_quantize: its straight-through gradient against the definition (and finite differences where defined),
native vs reference, ONNX form; QAT models train natively with fit and convert to int8 without data."""
import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.jit import compile_graph
from kcompile.ir import GraphBuilder, TensorType
from kcompile.ir.ops.qat import nudged
from kcompile.passes import grad_graph
from kcompile.runtime.reference import run

from quant_helpers import mlp, trained_digits_mlp


def fq_loss(shape, lo_shape, narrow=False, dtype="f64"):
    """loss = sum(fake_quantize(x, lo, hi) * w): its gradients are the VJP with cotangent w."""
    b = GraphBuilder("fq")
    x, w = b.input("x", TensorType(shape, dtype)), b.input("w", TensorType(shape, dtype))
    lo, hi = b.input("lo", TensorType(lo_shape, dtype)), b.input("hi", TensorType(lo_shape, dtype))
    y = b.fake_quantize(x, lo, hi, narrow=narrow)
    return b.build([b.reduce_sum(b.mul(y, w))])


@pytest.mark.parametrize("lo_shape, narrow", [((), False), ((5,), True)])
def test_straight_through_gradient_is_the_definition(lo_shape, narrow):
    rng = np.random.default_rng(0)
    x, w = rng.normal(0, 2, (4, 5)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32)
    lo, hi = -rng.uniform(0.5, 1.5, lo_shape).astype(np.float32), rng.uniform(0.5, 2, lo_shape).astype(np.float32)
    g = grad_graph(fq_loss((4, 5), lo_shape, narrow, "f32"), ["x", "lo", "hi"])
    _, dx, dlo, dhi = run(g, {"x": x, "w": w, "lo": lo, "hi": hi})
    _, nmin, nmax = nudged(x, lo, hi, narrow)
    inside = (x >= nmin) & (x <= nmax)
    assert 0 < inside.mean() < 1                                       # both sides of the range are exercised
    np.testing.assert_array_equal(dx, np.where(inside, w, 0))          # identity inside, zero outside
    below, above = np.where(x < nmin, w, 0), np.where(x > nmax, w, 0)
    np.testing.assert_allclose(dlo, below.sum() if lo_shape == () else below.sum(0), rtol=1e-6)
    np.testing.assert_allclose(dhi, above.sum() if lo_shape == () else above.sum(0), rtol=1e-6)


def test_gradient_matches_finite_differences_of_the_clamp_where_defined():
    """Away from the grid's steps, d/dx of the surrogate clamp(x, nmin, nmax) is the rule's dx."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, (3, 4))
    lo, hi = np.array(-1.0), np.array(1.5)
    w = rng.normal(size=x.shape)
    _, nmin, nmax = nudged(x, lo, hi, False)
    x = np.where(np.abs(x - nmin) < 1e-3, x + 0.01, x)                # keep clear of the clamp's kinks
    g = grad_graph(fq_loss((3, 4), ()), ["x"])
    dx = run(g, {"x": x, "w": w, "lo": lo, "hi": hi})[1]
    eps = 1e-6

    def surrogate(v):
        return float(np.sum(np.clip(v, float(nmin), float(nmax)) * w))
    fd = np.array([(surrogate(x + eps * e) - surrogate(x - eps * e)) / (2 * eps)
                   for e in np.eye(x.size).reshape(-1, *x.shape)]).reshape(x.shape)
    np.testing.assert_allclose(dx, fd, atol=1e-6)


def test_native_matches_reference_to_one_ulp():
    b = GraphBuilder("fq")
    x = b.input("x", TensorType(["N", 13]))
    lo = b.param("lo", np.linspace(-1, 0.5, 13).astype(np.float32))
    hi = b.param("hi", np.linspace(0.1, 3, 13).astype(np.float32))
    g = b.build([b.fake_quantize(x, lo, hi)])
    xs = np.random.default_rng(2).normal(0, 2, (301, 13)).astype(np.float32)
    ref, nat = run(g, [xs])[0], compile_graph(g)([xs])[0]
    np.testing.assert_allclose(nat, ref, rtol=0, atol=np.spacing(np.abs(ref).max()))  # FMA contraction: 1 ulp


@pytest.fixture(scope="module")
def qat_trained():
    kc.config.set_backend(None)
    m, (x, y), (xt, yt) = trained_digits_mlp()
    qm = kc.quantization.quantize_aware(m)
    qm.compile(optimizer=kc.optimizers.Adam(1e-3), loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True))
    qm.fit(x, y, epochs=1, batch_size=64, verbose=0)
    return m, qm, (xt, yt)


def test_qat_model_trains_natively_and_learns_ranges(qat_trained):
    m, qm, (xt, yt) = qat_trained
    assert all(w.dtype == "float32" for w in m.weights) and qm is not m
    ranges = {v.path: float(v.numpy()) for v in qm.weights if "qat_" in v.path}
    assert ranges["dense/qat_input_max"] == pytest.approx(1.0) and ranges["dense/qat_input_min"] == 0.0
    assert ranges["dense/qat_output_max"] > 0.5 and ranges["dense_1/qat_output_min"] < 0
    ops = [n.op for n in qm.forward_graph().nodes]
    assert ops.count("fake_quantize") == 5                  # 2 kernels, the input, 2 layer outputs
    acc = (qm.predict(xt, verbose=0).argmax(1) == yt).mean()
    assert acc > 0.85


def test_qat_converts_without_data_and_keeps_accuracy(qat_trained, tmp_path):
    _, qm, (xt, yt) = qat_trained
    q = kc.quantization.quantize(qm)
    assert q.quantization_report["int8"] == ["dense", "dense_1"] and q.quantization_report["float"] == []
    kc.config.set_backend("reference")
    try:
        acc_q = (q.predict(xt, verbose=0).argmax(1) == yt).mean()
    finally:
        kc.config.set_backend(None)
    acc_qat = (qm.predict(xt, verbose=0).argmax(1) == yt).mean()
    assert abs(acc_q - acc_qat) <= 0.01
    qm.save(tmp_path / "qat.keras")
    loaded = kc.models.load_model(tmp_path / "qat.keras")
    np.testing.assert_array_equal(loaded.predict(xt[:9], verbose=0), qm.predict(xt[:9], verbose=0))


def test_untrained_qat_model_is_refused_for_conversion():
    m, x = mlp(), np.random.default_rng(0).normal(size=(4, 12)).astype(np.float32)
    qm = kc.quantization.quantize_aware(m)     # activation ranges unset: only the kernels are fake-quantized
    y, yq = m.predict(x, verbose=0), qm.predict(x, verbose=0)
    assert 0 < np.abs(y - yq).max() < 0.05
    with pytest.raises(ValueError, match="train it"):
        kc.quantization.quantize(qm)
