"""In-place training steps: fit/train_on_batch update Variables and optimizer slots in their own
arrays (no copies back), eager reads stay snapshots, and fit's step equals the artifact's."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.compiler.artifact import write_artifact
from kcompile.runtime import load

RNG = np.random.default_rng(3)
X = RNG.standard_normal((32, 5)).astype("float32")
Y = (X[:, 0] > 0).astype("int64") + (X[:, 1] > 0)


def mlp(optimizer="rmsprop", backend="native"):
    model = kc.Sequential([layers.Dense(8, activation="relu", input_shape=(5,)), layers.Dense(3, activation="softmax")])
    model.set_weights([RNG.standard_normal(w.shape).astype("float32") * 0.3 for w in model.get_weights()])
    model.compile(optimizer, "sparse_categorical_crossentropy", backend=backend)
    return model


def _runner(model):
    (runner,) = [r for key, r in model._compiled.step_cache.items() if key[0] == "train"]
    return runner


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_steps_update_the_variables_own_arrays(backend):
    model = mlp(backend=backend)
    arrays = [v.value_array for v in model.weights]
    before = model.get_weights()
    kernel_read = model.layers[0].kernel.numpy()
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    model.train_on_batch(X[:8], Y[:8])
    slots = [a for p in model.optimizer.slots.values() for a in p.values()]
    model.train_on_batch(X[8:16], Y[8:16])
    assert all(v.value_array is a for v, a in zip(model.weights, arrays))    # the same buffers, updated
    assert all(a is b for a, b in zip(slots, [a for p in model.optimizer.slots.values() for a in p.values()]))
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    np.testing.assert_array_equal(kernel_read, before[0])                    # eager reads are snapshots
    assert not np.shares_memory(model.layers[0].kernel.numpy(), arrays[0])
    if backend == "native":
        bound = _runner(model)._bound
        assert any(p is arrays[0] for p in bound.params)                     # native code writes here


def test_native_and_reference_steps_agree():
    native, ref = mlp(backend="native"), mlp(backend="reference")
    ref.set_weights(native.get_weights())
    for m in (native, ref):
        m.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(native.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_replaced_arrays_are_rebound():
    """set_weights and assign replace a Variable's array: the next step must use (and update) the new one."""
    model, twin = mlp("sgd"), mlp("sgd")
    model.train_on_batch(X[:8], Y[:8])
    start = [w * 0.5 for w in model.get_weights()]
    model.set_weights(start)
    twin.set_weights(start)
    model.train_on_batch(X[8:16], Y[8:16])
    twin.train_on_batch(X[8:16], Y[8:16])
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert not np.allclose(a, start[0] if a.shape == start[0].shape else a + 1)


def test_in_place_parameters_must_be_exact_arrays():
    model = mlp("sgd")
    model.train_on_batch(X[:8], Y[:8])
    runner = _runner(model)
    params = runner.params()
    name = next(n for n in runner.updates.values() if params[n].ndim == 2)
    for bad in (np.asfortranarray(params[name]), params[name].copy()):
        bad.flags.writeable = bad.flags.f_contiguous   # a copy NumPy would make, or a read-only array
        with pytest.raises(ValueError, match=f"'{name}' is updated in place"):
            runner.execute.bind({**params, name: bad})


def test_fit_and_artifact_train_steps_give_the_same_weights(tmp_path):
    model = mlp("rmsprop")
    graph = model.train_step_graph(Y)
    assert graph.meta["param_updates"]
    art = load(write_artifact(model.forward_graph(), tmp_path / "art", "art", train_step=graph))
    lr = float(model.optimizer.learning_rate)
    for k in range(3):
        art.train_step(X[8 * k:8 * k + 8], Y[8 * k:8 * k + 8].astype("float32"), learning_rate=lr)
    model.fit(X[:24], Y[:24], batch_size=8, epochs=1, shuffle=False, verbose=0)
    ours = {v.path: v.numpy() for v in model.weights}
    theirs = dict(zip(art.weight_names, art.get_weights()))
    for path, value in ours.items():
        np.testing.assert_allclose(theirs[path], value, rtol=1e-6, atol=1e-7, err_msg=path)
    for path, slots in model.optimizer.slots.items():
        for slot, value in slots.items():
            np.testing.assert_allclose(theirs[model.optimizer.slot_param_name(slot, path)], value, rtol=1e-6,
                                       atol=1e-7)
