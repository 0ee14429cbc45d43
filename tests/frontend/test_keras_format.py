"""Keras 3's .keras format (jax backend, where installed): Keras writes -> kcompile reads -> same predictions and
the same further training; kcompile writes (format="keras") -> Keras loads -> the same; bad files and
kcompile-only models get clear errors, and nothing from a file is executed."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import kcompile as kc  # noqa: E402
from kcompile.frontend.keras_config import KerasFormatError  # noqa: E402


def recurrent_functional(L, Input, Model, Sequential):
    inp = Input((7, 3))
    x = L.Conv1D(4, 3, padding="same", activation="relu")(inp)
    x = L.LSTM(5, return_sequences=True)(x)
    x = L.GRU(4, return_sequences=True)(x)
    x = L.SimpleRNN(3, return_sequences=True)(x)
    x = L.LayerNormalization()(x)
    x = L.MaxPooling1D()(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.0)(x)   # (training masks are random: parity needs none)
    x = L.BatchNormalization()(L.Dense(6, use_bias=False)(x))   # (a bias before BN gets ~0 gradients)
    a, b = L.Dense(2)(x), L.Dense(2, activation="tanh")(x)
    return Model(inp, L.Concatenate()([L.Add()([a, b]), a]))


def conv_sequential(L, Input, Model, Sequential):
    return Sequential([Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"), L.DepthwiseConv2D(3),
                       L.SeparableConv2D(3, 2, padding="same", use_bias=False), L.BatchNormalization(), L.AveragePooling2D(2),
                       L.Flatten(), Sequential([L.Dense(3, kernel_regularizer="l2")]), L.Dense(2, activation="softmax")])


def embedding_two_inputs(L, Input, Model, Sequential):
    words, extra = Input((5,), dtype="int32"), Input((2,))
    e = L.GlobalAveragePooling1D()(L.Embedding(11, 4)(words))
    shared = L.Dense(3, activation="relu")
    return Model([words, extra], [shared(L.Concatenate()([e, extra])), L.Dense(1)(extra)])


def layer_zoo(L, Input, Model, Sequential):
    a, b = Input((6, 4)), Input((6, 4))
    x = L.Conv1D(4, 2, padding="causal", activation="gelu")(a)
    x = L.Cropping1D((1, 1))(L.ZeroPadding1D(1)(x))
    y = L.Permute((1, 2))(b)
    z = L.Concatenate()([L.Multiply()([x, y]), L.Subtract()([x, y]), L.Average()([x, y]), L.Maximum()([x, y]),
                         L.Minimum()([x, y])])
    z = L.GRU(3, reset_after=False, return_sequences=True, go_backwards=True)(z)
    z = L.ELU()(L.LeakyReLU(0.1)(z))
    z = L.UpSampling2D((2, 1))(L.MaxPooling2D((2, 1))(L.Reshape((6, 3, 1))(z)))
    z = L.Cropping2D(((1, 0), (0, 1)))(L.ZeroPadding2D(((1, 0), (0, 1)))(z))
    z = L.Activation("swish")(L.Flatten()(L.RepeatVector(2)(L.Rescaling(2.0, 0.5)(L.GlobalMaxPooling2D()(z)))))
    return Model([a, b], [L.Dense(2)(z), L.Identity()(z)])


CASES = {"recurrent_functional": (recurrent_functional, lambda r: [r.standard_normal((6, 7, 3))], [4]),
         "conv_sequential": (conv_sequential, lambda r: [r.standard_normal((6, 8, 8, 3))], [2]),
         "layer_zoo": (layer_zoo, lambda r: [r.standard_normal((6, 6, 4)), r.standard_normal((6, 6, 4))], [2, 2]),
         "embedding_two_inputs": (embedding_two_inputs, lambda r: [r.integers(0, 11, (6, 5)), r.standard_normal((6, 2))],
                                  [3, 1])}


def _data(case):
    build, make_x, out_dims = CASES[case]
    rng = np.random.default_rng(0)
    xs = [x.astype("int32" if x.dtype.kind == "i" else "float32") for x in make_x(rng)]
    ys = [rng.standard_normal((6, d)).astype("float32") for d in out_dims]
    return build, (xs if len(xs) > 1 else xs[0]), (ys if len(ys) > 1 else ys[0])


def _metrics(y):
    return [["mae"], []] if isinstance(y, list) else ["mae"]    # Keras 3 wants one list per output


def _fit(model, x, y, epochs):
    model.fit(x, y, epochs=epochs, batch_size=3, shuffle=False, verbose=0)


def _assert_same(ours, theirs, x, atol=1e-5):
    got, want = ours.predict(x, verbose=0), theirs.predict(x, verbose=0)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-4, atol=atol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_file_loads_with_same_predictions(tmp_path, case):
    build, x, _ = _data(case)
    theirs = build(keras.layers, keras.Input, keras.Model, keras.Sequential)
    rng = np.random.default_rng(2)
    theirs.set_weights([w + rng.uniform(0.1, 0.5, w.shape).astype(w.dtype) for w in theirs.get_weights()])
    theirs.save(tmp_path / "k.keras")
    ours = kc.models.load_model(tmp_path / "k.keras")
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    _assert_same(ours, theirs, x)
    ours.save(tmp_path / "c.keras", format="keras")      # and back: Keras reads what kcompile writes
    _assert_same(ours, keras.models.load_model(tmp_path / "c.keras"), x)


def _continue_training(tmp_path, case, writer, optimizer):
    """writer (keras or kc) fits one epoch and saves; the other side loads; both fit one more epoch."""
    build, x, y = _data(case)
    first = build(*((keras.layers, keras.Input, keras.Model, keras.Sequential) if writer == "keras"
                    else (kc.layers, kc.Input, kc.Model, kc.Sequential)))
    first.compile(optimizer=optimizer, loss="mse", metrics=_metrics(y))
    _fit(first, x, y, 1)
    if writer == "keras":
        first.save(tmp_path / "m.keras")
        second = kc.models.load_model(tmp_path / "m.keras")
        assert type(second.optimizer).__name__ == type(first.optimizer).__name__
    else:
        first.save(tmp_path / "m.keras", format="keras")
        second = keras.models.load_model(tmp_path / "m.keras")
    assert int(second.optimizer.iterations) == 2
    _assert_same(second, first, x)
    _fit(first, x, y, 1)      # the restored slots and step make the next epoch match
    _fit(second, x, y, 1)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4)


def test_fit_continues_after_keras_writes_and_kcompile_reads(tmp_path):
    _continue_training(tmp_path, "embedding_two_inputs", "keras", keras.optimizers.Adam(0.01))


def test_fit_continues_after_kcompile_writes_and_keras_reads(tmp_path):
    _continue_training(tmp_path, "embedding_two_inputs", "kc", kc.optimizers.RMSprop(0.01, momentum=0.5))


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["keras", "kc"])
@pytest.mark.parametrize("case", ["recurrent_functional", "conv_sequential"])
def test_fit_continues_across_formats_bigger_models(tmp_path, case, writer):
    make = (keras if writer == "keras" else kc).optimizers.Adam
    _continue_training(tmp_path, case, writer, make(0.01))


def test_layer_options_survive_both_directions(tmp_path):
    def build(L, Input, Model, Sequential):
        return Sequential([Input((4,)), L.Dense(3, activation="elu", use_bias=False, name="d",
                                                kernel_initializer=keras_or_kc(L).initializers.HeNormal(seed=4),
                                                kernel_constraint=keras_or_kc(L).constraints.MaxNorm(2.0),
                                                kernel_regularizer=keras_or_kc(L).regularizers.L1L2(0.01, 0.02)),
                           L.LeakyReLU(negative_slope=0.2), L.Reshape((3, 1)), L.UpSampling1D(2)])
    ours = build(kc.layers, kc.Input, kc.Model, kc.Sequential)
    ours.save(tmp_path / "o.keras", format="keras")
    theirs = keras.models.load_model(tmp_path / "o.keras")
    dense = theirs.get_layer("d").get_config()
    assert dense["activation"] == "elu" and dense["use_bias"] is False
    assert dense["kernel_initializer"]["config"]["seed"] == 4 and dense["kernel_constraint"]["config"]["max_value"] == 2.0
    assert theirs.get_layer("d").kernel_regularizer.get_config() == {"l1": 0.01, "l2": 0.02}
    x = np.random.default_rng(1).standard_normal((2, 4)).astype("float32")
    _assert_same(ours, theirs, x)
    theirs.save(tmp_path / "t.keras")
    back = kc.models.load_model(tmp_path / "t.keras")
    assert back.get_layer("d").get_config() == ours.get_layer("d").get_config()


def keras_or_kc(L):
    return keras if L is keras.layers else kc


# -- bad input -------------------------------------------------------------------------------
def _keras_file(tmp_path, model, name="k.keras"):
    model.save(tmp_path / name)
    with zipfile.ZipFile(tmp_path / name) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(tmp_path, members, name):
    with zipfile.ZipFile(tmp_path / name, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    return tmp_path / name


def _small_keras():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d"), keras.layers.Dense(1, name="e")])


def test_unsupported_layer_class_is_refused(tmp_path):
    members = _keras_file(tmp_path, _small_keras())
    tree = json.loads(members["config.json"])
    tree["config"]["layers"][1]["class_name"] = "FancyLayer"
    members["config.json"] = json.dumps(tree).encode()
    with pytest.raises(KerasFormatError, match=r"layer 'd' \(FancyLayer\): this layer class is not supported"):
        kc.models.load_model(_write(tmp_path, members, "bad.keras"))


def test_unsupported_keras_option_is_named(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(renorm=True, name="bn")])
    with pytest.raises(KerasFormatError, match=r"layer 'bn' \(BatchNormalization\): Keras option renorm=True"):
        kc.models.load_model(_write(tmp_path, _keras_file(tmp_path, model), "renorm.keras"))


def test_lambda_layer_is_never_executed(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2, name="lam")])
    with pytest.raises(KerasFormatError, match="Lambda layer holds Python code"):
        kc.models.load_model(_write(tmp_path, _keras_file(tmp_path, model), "lambda.keras"))


def _edit_h5(members, edit):
    src = h5py.File(io.BytesIO(members["model.weights.h5"]), "r")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as dst:
        for key in src:
            src.copy(key, dst)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        edit(dst)
    members["model.weights.h5"] = buf.getvalue()
    return members


def test_weights_whose_shapes_disagree_with_the_config_are_refused(tmp_path):
    def wrong_shape(h5):
        del h5["layers/dense_1/vars/0"]
        h5["layers/dense_1/vars/0"] = np.zeros((5, 1), np.float32)
    members = _edit_h5(_keras_file(tmp_path, _small_keras()), wrong_shape)
    with pytest.raises(KerasFormatError, match=r"weight 'e/kernel' of layer 'e' has shape \(2, 1\), the file's "
                                               r"'layers/dense_1/vars/0' has shape \(5, 1\)"):
        kc.models.load_model(_write(tmp_path, members, "shape.keras"))

    def missing(h5):
        del h5["layers/dense/vars/1"]
    members = _edit_h5(_keras_file(tmp_path, _small_keras()), missing)
    with pytest.raises(KerasFormatError, match=r"layer 'd' has 2 weights .* the file holds 1"):
        kc.models.load_model(_write(tmp_path, members, "missing.keras"))


def test_kcompile_only_models_are_refused_on_export(tmp_path):
    lam = kc.Sequential([kc.Input((3,)), kc.layers.Lambda(lambda t: t * 2)])
    with pytest.raises(KerasFormatError, match=r"\(Lambda\) cannot be written in the Keras format: it holds Python"):
        lam.save(tmp_path / "lam.keras", format="keras")

    @kc.saving.register_keras_serializable(package="kio_test")
    class Twice(kc.layers.Layer):
        def call(self, x):
            return x * 2
    custom = kc.Sequential([kc.Input((3,)), Twice(name="twice")])
    with pytest.raises(KerasFormatError, match=r"layer 'twice' \(Twice\) .* custom or kcompile-only"):
        custom.save(tmp_path / "custom.keras", format="keras")

    inp = kc.Input((3,))
    ops_model = kc.Model(inp, kc.layers.Dense(2)(inp) * 2.0)
    with pytest.raises(KerasFormatError, match="applies op 'mul' outside a layer"):
        ops_model.save(tmp_path / "ops.keras", format="keras")
    assert not any(p.name.endswith(".keras") for p in tmp_path.iterdir())


def test_weights_files_in_keras_layout_both_ways(tmp_path):
    theirs = _small_keras()
    theirs.set_weights([np.full(w.shape, i + 0.5, np.float32) for i, w in enumerate(theirs.get_weights())])
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours = kc.Sequential([kc.Input((3,)), kc.layers.Dense(2), kc.layers.Dense(1)])
    ours.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))
    ours.set_weights([w * 3 for w in ours.get_weights()])
    ours.save_weights(tmp_path / "o.weights.h5", format="keras")
    theirs.load_weights(tmp_path / "o.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, np.asarray(b))
    wider = kc.Sequential([kc.Input((3,)), kc.layers.Dense(5), kc.layers.Dense(1)])
    before = [w.copy() for w in wider.get_weights()]
    with pytest.raises(KerasFormatError, match=r"has shape \(3, 5\), the file's 'layers/dense/vars/0' has shape"):
        wider.load_weights(tmp_path / "o.weights.h5")
    for a, b in zip(wider.get_weights(), before):      # nothing half-loaded
        np.testing.assert_array_equal(a, b)


def test_malformed_keras_archives_get_clear_errors(tmp_path):
    members = _keras_file(tmp_path, _small_keras())
    tree = json.loads(members["config.json"])
    del tree["config"]["layers"]
    bad = dict(members, **{"config.json": json.dumps(tree).encode()})
    with pytest.raises(KerasFormatError, match="malformed Keras model config"):
        kc.models.load_model(_write(tmp_path, bad, "nolayers.keras"))
    garbage = dict(members, **{"model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 100})
    with pytest.raises(KerasFormatError, match="HDF5 weights are not readable"):
        kc.models.load_model(_write(tmp_path, garbage, "garbage.keras"))
    tree = json.loads(members["config.json"])
    tree["class_name"] = "MyModel"
    sub = dict(members, **{"config.json": json.dumps(tree).encode()})
    with pytest.raises(KerasFormatError, match="subclassed model's code is not in the file"):
        kc.models.load_model(_write(tmp_path, sub, "sub.keras"))


def test_keras_compile_config_with_functions_and_objects_is_restored(tmp_path):
    model = _small_keras()
    model.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), momentum=0.5),
                  loss=keras.losses.mean_squared_error,
                  metrics=[keras.metrics.mean_absolute_error, keras.metrics.RootMeanSquaredError(name="rmse")])
    model.save(tmp_path / "c.keras")
    ours = kc.models.load_model(tmp_path / "c.keras")
    loss, _, metrics, _ = ours._compiled._spec
    assert loss == "mean_squared_error" and metrics[0] == "mean_absolute_error"
    assert isinstance(metrics[1], kc.metrics.RootMeanSquaredError) and metrics[1].name == "rmse"
    assert isinstance(ours.optimizer._learning_rate, kc.optimizers.schedules.ExponentialDecay)
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == set(want)
    for k in logs:
        np.testing.assert_allclose(logs[k], want[k], rtol=1e-5)
