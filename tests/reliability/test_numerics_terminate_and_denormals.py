"""Training stops on a NaN/inf loss as Keras' TerminateOnNaN does; denormals never slow kernels down.

The denormal guarantee is tested through its mechanism, FTZ/DAZ inside native code (denormal inputs
count as zero, denormal results flush to zero, on pool workers too), not by timing: on this test
host (AMD Zen 4) even NumPy without FTZ/DAZ runs denormal products only ~1.3x slower (measured), so
a timing test could not fail here, while on Intel cores the assists cost 10-100x.
"""
import numpy as np
import pytest

import kcompile as kc
from kcompile.compiler.jit import compile_graph
from kcompile.frontend import callbacks
from kcompile.ir import GraphBuilder, TensorType

DENORMAL = np.float32(1e-39)   # below float32's smallest normal, 1.18e-38


# -- TerminateOnNaN ------------------------------------------------------------------------------
def _fit_with_bad_batch(backend, bad, capsys):
    """8 batches of 4 per epoch, batch 3 holding a NaN input or an infinite target; 3 epochs asked."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = x @ np.array([[1.0], [2.0], [-1.0], [0.5]], np.float32)
    if bad == "nan":
        x[13, 2] = np.nan
    else:
        y[13, 0] = np.inf
    model = kc.Sequential([kc.Input((4,)), kc.layers.Dense(1)])
    model.compile(kc.optimizers.SGD(0.01), "mse", backend=backend)
    seen = {"batches": [], "epochs": [], "train_end": 0}
    spy = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen["batches"].append((b, logs["loss"])),
                                   on_epoch_end=lambda e, logs: seen["epochs"].append(e),
                                   on_train_end=lambda logs: seen.__setitem__("train_end", seen["train_end"] + 1))
    with np.errstate(all="ignore"):
        hist = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                         callbacks=[callbacks.TerminateOnNaN(), spy])
    return hist, seen, capsys.readouterr().out


@pytest.mark.parametrize("backend, bad", [("reference", "nan"), ("reference", "inf"), ("native", "nan")])
def test_terminate_on_nan_stops_after_the_first_bad_batch_as_keras_does(backend, bad, capsys):
    hist, seen, out = _fit_with_bad_batch(backend, bad, capsys)
    # Keras 3: the callback sets stop_training in on_batch_end; fit leaves the batch loop at once,
    # still ends the epoch (on_epoch_end, history) and the training (on_train_end)
    assert [b for b, _ in seen["batches"]] == [0, 1, 2, 3]
    assert all(np.isfinite(loss) for _, loss in seen["batches"][:3]) and not np.isfinite(seen["batches"][3][1])
    assert seen["epochs"] == [0] and seen["train_end"] == 1
    assert len(hist.history["loss"]) == 1 and not np.isfinite(hist.history["loss"][0])
    assert "Batch 3: Invalid loss, terminating training" in out


def test_without_terminate_on_nan_training_runs_on(capsys):
    model = kc.Sequential([kc.Input((2,)), kc.layers.Dense(1)])
    model.compile(kc.optimizers.SGD(0.01), "mse", backend="reference")
    x = np.ones((8, 2), np.float32)
    x[1, 0] = np.nan
    with np.errstate(all="ignore"):
        hist = model.fit(x, np.ones((8, 1), np.float32), batch_size=4, epochs=2, verbose=0)
    assert len(hist.history["loss"]) == 2


# -- denormals -----------------------------------------------------------------------------------
def _matmul_graph(n):
    b = GraphBuilder(f"mm{n}")
    x, w = b.input("x", TensorType(["N", n])), b.input("w", TensorType([n, n]))
    return b.build([b.matmul(x, w)])


def _conv_graph():
    b = GraphBuilder("conv_dn")
    x, w = b.input("x", TensorType(["N", 8, 8, 4])), b.input("w", TensorType([3, 3, 4, 8]))
    return b.build([b.op("conv2d", x, w, padding="same")])


@pytest.mark.parametrize("nthreads", [1, 2])
def test_kernels_treat_denormal_inputs_as_zero(nthreads):
    """DAZ: a denormal times 1e30 would be ~1e-9; inside native code it is 0 (pool workers included)."""
    mm = compile_graph(_matmul_graph(48))
    got = mm([np.full((5, 48), DENORMAL), np.full((48, 48), 1e30, np.float32)], nthreads=nthreads)[0]
    assert np.all(got == 0)
    conv = compile_graph(_conv_graph())
    got = conv([np.full((2, 8, 8, 4), DENORMAL), np.full((3, 3, 4, 8), 1e30, np.float32)], nthreads=nthreads)[0]
    assert np.all(got == 0)
    assert DENORMAL * np.float32(1e30) > 0   # NumPy, outside native code, keeps IEEE denormals


def test_kernels_flush_denormal_results_to_zero():
    mm = compile_graph(_matmul_graph(16))
    got = mm([np.full((3, 16), 1e-20, np.float32), np.full((16, 16), 1e-20, np.float32)])[0]
    assert np.all(got == 0)   # 16 * 1e-40 is denormal: FTZ makes it 0
