"""Optimizer update formulas: IR (reference interpreter) and eager paths vs hand-written NumPy."""
import numpy as np
import pytest

from kcompile.frontend import optimizers, schedules
from kcompile.frontend.training.emitter import NumpyEmitter
from kcompile.ir import GraphBuilder, TensorType
from kcompile.runtime import reference

STEPS = 4
RTOL = 1e-5


def _data():
    rng = np.random.default_rng(0)
    var = rng.standard_normal((3, 5)).astype(np.float32)
    grads = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(STEPS)]
    return var, grads


def numpy_sgd(var, grads, lr=0.01, momentum=0.0, nesterov=False):
    m = np.zeros_like(var)
    for g in grads:
        if momentum == 0:
            var = var - lr * g
            continue
        m = momentum * m - lr * g
        var = var + (momentum * m - lr * g if nesterov else m)
    return var


def numpy_rmsprop(var, grads, lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    v, mom, avg = np.zeros_like(var), np.zeros_like(var), np.zeros_like(var)
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        if centered:
            avg = rho * avg + (1 - rho) * g
            inc = lr * g / np.sqrt(v - avg * avg + eps)
        else:
            inc = lr * g / np.sqrt(v + eps)
        if momentum > 0:
            mom = momentum * mom + inc
            var = var - mom
        else:
            var = var - inc
    return var


def numpy_adam(var, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=None):
    m, v, vhat = np.zeros_like(var), np.zeros_like(var), np.zeros_like(var)
    for t, g in enumerate(grads, start=1):
        if wd is not None:
            var = var - var * wd * lr
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        if amsgrad:
            vhat = np.maximum(vhat, v)
        var = var - m * alpha / (np.sqrt(vhat if amsgrad else v) + eps)
    return var


def numpy_adagrad(var, grads, lr=0.001, init=0.1, eps=1e-7):
    acc = np.full_like(var, init)
    for g in grads:
        acc = acc + g * g
        var = var - lr * g / np.sqrt(acc + eps)
    return var


CASES = [
    (lambda: optimizers.SGD(), lambda v, g: numpy_sgd(v, g)),
    (lambda: optimizers.SGD(0.1, momentum=0.9), lambda v, g: numpy_sgd(v, g, 0.1, 0.9)),
    (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True), lambda v, g: numpy_sgd(v, g, 0.1, 0.9, True)),
    (lambda: optimizers.RMSprop(), lambda v, g: numpy_rmsprop(v, g)),
    (lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
     lambda v, g: numpy_rmsprop(v, g, 0.01, momentum=0.5, centered=True)),
    (lambda: optimizers.Adam(), lambda v, g: numpy_adam(v, g)),
    (lambda: optimizers.Adam(0.01, amsgrad=True), lambda v, g: numpy_adam(v, g, 0.01, amsgrad=True)),
    (lambda: optimizers.AdamW(0.01), lambda v, g: numpy_adam(v, g, 0.01, wd=0.004)),
    (lambda: optimizers.Adagrad(0.1), lambda v, g: numpy_adagrad(v, g, 0.1)),
]


def _update_graph(opt, var):
    """One update step as a graph: inputs grad, lr, iterations; params var and slots."""
    b = GraphBuilder("update")
    g = b.input("grad", TensorType(var.shape))
    lr = b.input("__learning_rate", TensorType(()))
    it = b.input("__iterations", TensorType(()))
    p = b.param("w", var)
    slots = {s: [b.param(f"optimizer/{s}/w", opt.slot_initial(s, var))] for s in opt.active_slots()}
    new_p, new_slots = opt.emit_update(b, [p], [g], slots, lr, it, ["w"])
    names = ["w"] + [f"optimizer/{s}/w" for s in slots]
    return b.build([new_p[0]] + [new_slots[s][0] for s in slots], names)


@pytest.mark.parametrize("make,expected", CASES)
def test_graph_update_matches_numpy(make, expected):
    var, grads = _data()
    opt = make()
    graph = _update_graph(opt, var)
    state = dict(graph.param_values)
    for step, g in enumerate(grads):
        outs = reference.run(graph, [g, np.float32(opt.learning_rate), np.float32(step)], state)
        state = dict(zip(graph.output_names, outs))
    np.testing.assert_allclose(state["w"], expected(var, grads), rtol=RTOL, atol=1e-7)


@pytest.mark.parametrize("make,expected", CASES)
def test_eager_update_matches_numpy(make, expected):
    var, grads = _data()
    opt = make()
    slots = {s: [opt.slot_initial(s, var)] for s in opt.active_slots()}
    w = var
    for step, g in enumerate(grads):
        new, slots = opt.emit_update(NumpyEmitter(), [w], [g], slots, np.float32(opt.learning_rate),
                                     np.float32(step), ["w"])
        w = new[0]
    np.testing.assert_allclose(w, expected(var, grads), rtol=RTOL, atol=1e-7)


def test_clipnorm_and_clipvalue():
    g = np.array([[3.0, 4.0]], np.float32)
    E = NumpyEmitter()
    new, _ = optimizers.SGD(1.0, clipnorm=1.0).emit_update(E, [np.zeros_like(g)], [g], {}, np.float32(1), np.float32(0))
    np.testing.assert_allclose(new[0], -g / 5.0, rtol=1e-6)
    new, _ = optimizers.SGD(1.0, clipvalue=3.5).emit_update(E, [np.zeros_like(g)], [g], {}, np.float32(1), np.float32(0))
    np.testing.assert_allclose(new[0], [[-3.0, -3.5]])
    new, _ = optimizers.SGD(1.0, global_clipnorm=2.5).emit_update(E, [np.zeros_like(g)], [g], {}, np.float32(1),
                                                                    np.float32(0))
    np.testing.assert_allclose(new[0], -g / 2.0, rtol=1e-6)


def test_defaults_aliases_and_names():
    assert optimizers.get("rmsprop").learning_rate == np.float32(0.001)
    assert optimizers.get("sgd").learning_rate == np.float32(0.01)
    assert optimizers.RMSprop(lr=0.5).learning_rate == np.float32(0.5)
    assert optimizers.AdamW().weight_decay == 0.004
    assert optimizers.Adagrad().initial_accumulator_value == 0.1
    with pytest.raises(ValueError, match="Could not interpret optimizer"):
        optimizers.get("nonesuch")
    with pytest.raises(TypeError, match="unexpected keyword"):
        optimizers.Adam(betas=0.3)


def test_exponential_decay_schedule_drives_learning_rate():
    sched = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    opt = optimizers.SGD(sched)
    assert np.isclose(opt.learning_rate, 0.1)
    opt.iterations = 10
    assert np.isclose(opt.learning_rate, 0.05)
    stair = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert np.isclose(stair(9), 0.1) and np.isclose(stair(10), 0.05)
    pw = schedules.PiecewiseConstantDecay([5, 10], [1.0, 0.5, 0.1])
    assert [float(pw(s)) for s in (0, 5, 6, 10, 11)] == [1.0, 1.0, 0.5, 0.5, pytest.approx(0.1)]
