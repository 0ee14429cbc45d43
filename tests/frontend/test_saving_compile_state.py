"""load_model restores the compile state (optimizer with slots and step, losses, loss weights, metrics, the
dropout RNG counter), so fit(2 epochs) == fit(1), save, load, fit(1), as in Keras 3."""
import io
import json
import warnings
import zipfile

import numpy as np
import pytest

import kcompile as kc


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6)).astype("float32"), rng.integers(0, 3, n)


def _classifier(optimizer):
    m = kc.Sequential([kc.Input((6,)), kc.layers.Dense(8, activation="relu"), kc.layers.Dropout(0.3, seed=3),
                       kc.layers.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.mark.parametrize("make_opt", [
    pytest.param(lambda: kc.optimizers.Adam(0.01), id="adam"),
    pytest.param(lambda: kc.optimizers.SGD(0.05, momentum=0.9, nesterov=True), id="sgd", marks=pytest.mark.slow),
    pytest.param(lambda: kc.optimizers.RMSprop(0.01, centered=True), id="rmsprop", marks=pytest.mark.slow)])
def test_fit_continues_exactly_after_save_and_load(tmp_path, make_opt):
    x, y = _data()
    straight = _classifier(make_opt())
    initial = straight.get_weights()
    np.random.seed(1)   # fit shuffles with NumPy's global RNG: both runs draw the same permutations
    history = straight.fit(x, y, epochs=2, batch_size=16, verbose=0).history
    resumed = _classifier(make_opt())
    resumed.set_weights(initial)
    np.random.seed(1)
    resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)
    resumed.save(tmp_path / "m.keras")
    loaded = kc.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is type(straight.optimizer) and int(loaded.optimizer.iterations) == 3
    second = loaded.fit(x, y, epochs=1, batch_size=16, verbose=0).history
    assert second["loss"][0] == history["loss"][1] and second["accuracy"][0] == history["accuracy"][1]
    for a, b in zip(straight.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.evaluate(x, y, verbose=0) == straight.evaluate(x, y, verbose=0)


def test_multi_output_losses_weights_and_metrics_round_trip(tmp_path):
    inp = kc.Input((4,))
    a = kc.layers.Dense(1, name="a")(inp)
    b = kc.layers.Dense(2, activation="softmax", name="b")(inp)
    m = kc.Model(inp, [a, b])
    m.compile(optimizer=kc.optimizers.Adagrad(0.1), loss=[kc.losses.Huber(delta=0.5), "sparse_categorical_crossentropy"],
              loss_weights=[0.3, 2.0], metrics=[["mae"], [kc.metrics.SparseCategoricalAccuracy(name="acc")]])
    rng = np.random.default_rng(1)
    x, ya, yb = rng.standard_normal((12, 4)).astype("float32"), rng.standard_normal((12, 1)), rng.integers(0, 2, 12)
    m.fit(x, [ya, yb], epochs=1, batch_size=6, verbose=0)
    m.save(tmp_path / "mo.keras")
    loaded = kc.models.load_model(tmp_path / "mo.keras")
    c = loaded._compiled
    assert isinstance(c.losses[0], kc.losses.Huber) and c.losses[0].get_config()["delta"] == 0.5
    assert c.loss_weights == [0.3, 2.0]
    assert loaded.evaluate(x, [ya, yb], verbose=0, return_dict=True) == m.evaluate(x, [ya, yb], verbose=0,
                                                                                    return_dict=True)


def test_registered_loss_function_round_trips_and_unregistered_one_warns(tmp_path):
    @kc.saving.register_keras_serializable(package="kio_test")
    def doubled_mse(y_true, y_pred):
        return kc.ops.mean(kc.ops.square(y_true - y_pred), axis=-1) * 2.0

    m = kc.Sequential([kc.Input((3,)), kc.layers.Dense(1)])
    m.compile(optimizer="sgd", loss=doubled_mse)
    m.save(tmp_path / "reg.keras")
    assert kc.models.load_model(tmp_path / "reg.keras")._compiled.losses[0].fn is doubled_mse

    m.compile(optimizer="sgd", loss=lambda t, p: kc.ops.mean(t - p))
    with pytest.warns(UserWarning, match="without its compile state"):
        m.save(tmp_path / "lam.keras")
    assert getattr(kc.models.load_model(tmp_path / "lam.keras"), "_compiled", None) is None


def test_compile_false_and_uncompiled_models_load_uncompiled(tmp_path):
    m = _classifier("adam")
    m.save(tmp_path / "c.keras")
    assert kc.models.load_model(tmp_path / "c.keras", compile=False)._compiled is None
    plain = kc.Sequential([kc.Input((3,)), kc.layers.Dense(1)])
    with warnings.catch_warnings(record=True) as caught:   # an uncompiled model has no state to warn about
        warnings.simplefilter("always")
        plain.save(tmp_path / "p.keras")
    assert not [w for w in caught if "compile state" in str(w.message)]
    assert kc.models.load_model(tmp_path / "p.keras")._compiled is None


def test_optimizer_slot_with_wrong_shape_is_refused(tmp_path):
    x, y = _data(8)
    m = _classifier("adam")
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    with np.load(io.BytesIO(members["optimizer.npz"])) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["s0"] = np.zeros((2, 2), np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    members["optimizer.npz"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    assert json.loads(members["config.json"])["training_state"]["slots"][0] == [0, "momentum"]
    with pytest.raises(ValueError, match=r"slot 'momentum' of '.*kernel' has shape \(2, 2\)"):
        kc.models.load_model(tmp_path / "bad.keras")
