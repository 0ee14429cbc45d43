"""model.save / kc.models.load_model and save_weights / load_weights: round trips, custom classes,
and refusal of corrupt, truncated or pickled files (nothing is ever unpickled)."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

from model_helpers import predict_ref, rand


def _convnet():
    inp = kc.Input(shape=(8, 8, 2))
    x = layers.Conv2D(4, 3, activation="relu", padding="same", kernel_regularizer="l2")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    return kc.Model(inp, layers.Dense(3, activation="softmax")(x))


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) ** 2 for w in model.get_weights()])


def _roundtrip(model, tmp_path, *xs, name="m.keras"):
    path = tmp_path / name
    model.save(path)
    loaded = kc.models.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    want, got = predict_ref(model, *xs), predict_ref(loaded, *xs)
    for w, g in zip(want if isinstance(want, list) else [want], got if isinstance(got, list) else [got]):
        np.testing.assert_array_equal(w, g)
    return loaded


def test_sequential_roundtrip(tmp_path):
    m = kc.Sequential([layers.Dense(8, activation="relu", input_shape=(5,)), layers.Dense(2, activation="softmax")])
    loaded = _roundtrip(m, tmp_path, rand(3, 5))
    assert type(loaded).__name__ == "Sequential" and [l.name for l in loaded.layers] == [l.name for l in m.layers]


def test_functional_convnet_roundtrip_with_non_trainable_state(tmp_path):
    m = _convnet()
    _randomize(m)
    loaded = _roundtrip(m, tmp_path, rand(2, 8, 8, 2))
    assert len(loaded.non_trainable_weights) == 2
    assert loaded.layers[1].kernel_regularizer.l2 == 0.01


def test_functional_multi_io_roundtrip_with_ops(tmp_path):
    a, b = kc.Input(shape=(4,), name="a"), kc.Input(shape=(3,), name="b")
    h = layers.Dense(3)(a)
    s = layers.Add()([h, b])
    o1 = layers.Dense(2, name="o1")(layers.Concatenate()([s, a]))
    o2 = kc.ops.sigmoid(s * 0.5)
    m = kc.Model([a, b], [o1, o2])
    loaded = _roundtrip(m, tmp_path, rand(2, 4), rand(2, 3))
    assert loaded.output_names[0] == "o1"


@kc.saving.register_keras_serializable(package="test")
class ScaledDense(kc.layers.Layer):
    def __init__(self, units, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.factor = units, factor

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")

    def call(self, x):
        return kc.ops.matmul(x, self.w) * self.factor

    def get_config(self):
        return {**super().get_config(), "units": self.units, "factor": self.factor}


@kc.saving.register_keras_serializable(package="test")
def cube(x):
    return x * x * x


@kc.saving.register_keras_serializable(package="test")
class Tiny(kc.Model):
    def __init__(self, hidden=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden
        self.d = layers.Dense(hidden, activation=cube)
        self.s = ScaledDense(2)

    def call(self, x):
        return self.s(self.d(x))

    def get_config(self):
        return {"hidden": self.hidden, "name": self.name}


def test_custom_layer_activation_and_subclassed_model_roundtrip(tmp_path):
    m = kc.Sequential([kc.Input(shape=(4,)), ScaledDense(3, factor=0.5), layers.Dense(2, activation=cube)])
    loaded = _roundtrip(m, tmp_path, rand(2, 4))
    assert loaded.layers[0].factor == 0.5
    t = Tiny(hidden=5)
    t(rand(1, 4))
    loaded_t = _roundtrip(t, tmp_path, rand(3, 4), name="tiny.keras")
    assert isinstance(loaded_t, Tiny) and loaded_t.hidden == 5


def test_unregistered_custom_layer_cannot_be_saved(tmp_path):
    class Plain(kc.layers.Layer):
        def call(self, x):
            return x
    m = kc.Sequential([kc.Input(shape=(2,)), Plain()])
    with pytest.raises(ValueError, match="register_keras_serializable"):
        m.save(tmp_path / "p.keras")
    assert os.listdir(tmp_path) == []


def test_save_weights_load_weights(tmp_path):
    m = _convnet()
    _randomize(m, 1)
    m.save_weights(tmp_path / "w.weights.h5")
    other = _convnet()
    other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(m.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    small = kc.Sequential([layers.Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="weight arrays"):
        small.load_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="weights file, not a model"):
        kc.models.load_model(tmp_path / "w.weights.h5")


def test_overwrite_false_and_no_temp_files_left(tmp_path):
    m = kc.Sequential([layers.Dense(2, input_shape=(3,))])
    m.save(tmp_path / "a.keras")
    with pytest.raises(FileExistsError):
        m.save(tmp_path / "a.keras", overwrite=False)
    m.save(tmp_path / "a.keras")
    assert os.listdir(tmp_path) == ["a.keras"]


def test_corrupt_and_truncated_files_are_refused(tmp_path):
    m = kc.Sequential([layers.Dense(4, input_shape=(3,))])
    good = tmp_path / "good.keras"
    m.save(good)
    data = good.read_bytes()
    cases = {"truncated.keras": data[: len(data) // 2], "garbage.keras": b"not a model at all" * 10,
             "empty.keras": b""}
    flipped = bytearray(data)
    start = data.find(b"weights.npz") + 200
    flipped[start:start + 8] = b"XXXXXXXX"
    cases["flipped.keras"] = bytes(flipped)
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(ValueError, match="kcompile|corrupt|truncated|not a valid"):
            kc.models.load_model(tmp_path / name)


class _Bomb:
    def __reduce__(self):
        return (os.mkdir, (os.environ["KC_BOMB_DIR"],))


def test_pickled_payloads_are_never_unpickled(tmp_path, monkeypatch):
    marker = tmp_path / "exploded"
    monkeypatch.setenv("KC_BOMB_DIR", str(marker))
    # 1) a plain pickle file
    (tmp_path / "p.keras").write_bytes(pickle.dumps(_Bomb()))
    with pytest.raises(ValueError):
        kc.models.load_model(tmp_path / "p.keras")
    # 2) a well-formed archive whose weights.npz holds an object (pickled) array
    buf = io.BytesIO()
    np.savez(buf, w0=np.array([_Bomb()], dtype=object))
    with zipfile.ZipFile(tmp_path / "obj.keras", "w") as z:
        z.writestr("kcompile.json", json.dumps({"format": "kcompile-weights", "version": 1}))
        z.writestr("config.json", json.dumps({"weights": [{"path": "x", "shape": [1], "dtype": "float32"}]}))
        z.writestr("weights.npz", buf.getvalue())
    mdl = kc.Sequential([layers.Dense(1, input_shape=(1,), use_bias=False)])
    with pytest.raises(ValueError, match="corrupt or not plain numeric"):
        mdl.load_weights(tmp_path / "obj.keras")
    assert not marker.exists()


def test_unknown_class_in_config_is_refused(tmp_path):
    m = kc.Sequential([layers.Dense(2, input_shape=(3,))])
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    cfg["model"]["config"]["layers"][1]["class_name"] = "os.system"
    members["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(tmp_path / "evil.keras", "w") as z:
        for n, blob in members.items():
            z.writestr(n, blob)
    with pytest.raises(ValueError, match="unknown layer class 'os.system'"):
        kc.models.load_model(tmp_path / "evil.keras")


def test_get_config_from_config_clone_and_json():
    m = _convnet()
    again = kc.Model.from_config(m.get_config())
    assert [type(l).__name__ for l in again.layers] == [type(l).__name__ for l in m.layers]
    seq = kc.Sequential([layers.Dense(3, input_shape=(2,)), layers.Dense(1)])
    seq2 = kc.Sequential.from_config(seq.get_config())
    assert [w.shape for w in seq2.weights] == [w.shape for w in seq.weights]
    clone = kc.models.clone_model(seq)
    assert clone is not seq and clone.layers[0] is not seq.layers[0]
    assert not np.array_equal(clone.get_weights()[0], seq.get_weights()[0])
    from_json = kc.models.model_from_json(seq.to_json())
    assert from_json.output_shape == (None, 1)


def test_nested_model_roundtrip_and_frozen_base(tmp_path):
    base = kc.Sequential([layers.Dense(3, activation="relu", input_shape=(4,))], name="base")
    x = kc.Input(shape=(4,))
    outer = kc.Model(x, layers.Dense(1)(base(x)))
    base.trainable = False
    assert [w.shape for w in outer.trainable_weights] == [(3, 1), (1,)]
    assert len(outer.non_trainable_weights) == 2
    loaded = _roundtrip(outer, tmp_path, rand(2, 4))
    assert [type(l).__name__ for l in loaded.layers] == ["InputLayer", "Sequential", "Dense"]
    assert not loaded.layers[1].trainable and len(loaded.trainable_weights) == 2
