"""Fast eager mode: repeated GradientTape steps run a compiled gradient, large matmuls and the optimizer
update run compiled, and the results equal the reference interpreter's."""
import numpy as np

import kcompile as kc
from kcompile import layers, ops
from kcompile.frontend import eager_native


def _train(backend, w0, steps=3):
    kc.config.set_backend(backend)
    try:
        model = kc.Sequential([layers.Input((256,)), layers.Dense(512, activation="relu"), layers.Dense(4)])
        model.build((None, 256))
        model.set_weights(w0)
        opt = kc.optimizers.Adam(0.01)
        rng = np.random.default_rng(0)
        for _ in range(steps):
            x = rng.standard_normal((64, 256)).astype("float32")
            y = rng.standard_normal((64, 4)).astype("float32")
            with kc.GradientTape() as tape:
                loss = ops.mean(ops.square(model(x) - y))
            grads = tape.gradient(loss, model.trainable_weights)
            opt.apply_gradients(zip(grads, model.trainable_weights))
        return model.get_weights(), opt
    finally:
        kc.config.set_backend(None)


def test_repeated_eager_steps_run_compiled_and_match_the_reference():
    probe = kc.Sequential([layers.Input((256,)), layers.Dense(512, activation="relu"), layers.Dense(4)])
    probe.build((None, 256))
    w0 = probe.get_weights()
    eager_native._SEEN.clear()
    native_w, native_opt = _train("native", w0)
    compiled = [e for e in eager_native._SEEN.values() if not isinstance(e, int)]
    assert any(isinstance(e, eager_native._Gradient) and e.run is not None for e in compiled)   # the tape
    assert any(not isinstance(e, eager_native._Gradient) for e in compiled)                     # a matmul
    assert any(not isinstance(e, str) for e in native_opt._eager_updates.values())              # the update
    eager_native._SEEN.clear()
    reference_w, reference_opt = _train("reference", w0)
    assert not eager_native._SEEN and not getattr(reference_opt, "_eager_updates", None)
    for a, b in zip(native_w, reference_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(native_opt.iterations) == int(reference_opt.iterations) == 3


def test_a_one_off_gradient_is_not_compiled():
    eager_native._SEEN.clear()
    w = kc.Variable(np.ones(3, np.float32))
    with kc.GradientTape() as tape:
        y = ops.sum(w * w)
    np.testing.assert_allclose(tape.gradient(y, w).numpy(), 2 * np.ones(3))
    assert all(isinstance(e, int) for e in eager_native._SEEN.values())


def test_held_results_are_never_overwritten_by_later_steps():
    """Compiled eager calls reuse their output arrays only once nothing holds them any more."""
    eager_native._SEEN.clear()
    w = kc.Variable(np.random.default_rng(1).standard_normal((512, 512)).astype("float32"), name="w")
    rng = np.random.default_rng(2)

    def grad():
        x = rng.standard_normal((64, 512)).astype("float32")
        with kc.GradientTape() as tape:
            y = ops.sum(ops.square(ops.matmul(x, w)))
        return tape.gradient(y, w)

    held = [grad() for _ in range(6)]            # the 2nd compiles; all six stay referenced
    values = [g.numpy() for g in held]
    assert any(isinstance(e, eager_native._Gradient) for e in eager_native._SEEN.values())
    for _ in range(4):
        grad()                                   # results dropped at once: their arrays are reused
    for g, v in zip(held, values):
        np.testing.assert_array_equal(g.numpy(), v)
    assert len({id(g.data) for g in held}) == len(held)
