"""model.summary(): Keras 3's table, text and parameter counts (the book's MNIST MLP and convnet)."""
import kcompile as kc
from kcompile import layers

MLP_SUMMARY = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 512)            │       401,920 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 10)             │         5,130 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 407,050 (1.55 MB)
 Trainable params: 407,050 (1.55 MB)
 Non-trainable params: 0 (0.00 B)"""


def _capture(model, **kw):
    lines = []
    model.summary(print_fn=lines.append, **kw)
    return "\n".join(lines)


def test_book_mlp_summary_matches_keras_text(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    m = kc.Sequential([layers.Dense(512, activation="relu", input_shape=(784,), name="dense"),
                       layers.Dense(10, activation="softmax", name="dense_1")], name="sequential")
    assert m.count_params() == 407_050
    assert _capture(m) == MLP_SUMMARY


def test_book_convnet_summary_counts(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    inputs = kc.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    model = kc.Model(inputs, layers.Dense(10, activation="softmax")(x))
    text = _capture(model)
    assert " Total params: 104,202 (407.04 KB)" in text
    assert " Trainable params: 104,202 (407.04 KB)" in text
    assert "(None, 3, 3, 128)" in text and "(InputLayer)" in text
    table = [line for line in text.splitlines()[1:] if not line.startswith(" ")]
    assert len(table) == 3 + 8 + 7 + 1 and {len(line) for line in table} == {76}


def test_non_trainable_counts_and_wrapping(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    m = kc.Sequential([kc.Input(shape=(8,)), layers.Dense(4), layers.BatchNormalization()])
    text = _capture(m)
    assert " Total params: 52 (208.00 B)" in text and " Non-trainable params: 8 (32.00 B)" in text
    assert "│ (BatchNormalization)" in text     # long names wrap onto a second line, as rich does
    m.layers[0].trainable = False
    assert " Trainable params: 8 (32.00 B)" in _capture(m)


def test_multi_input_summary_has_connected_to_column(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    a, b = kc.Input(shape=(3,), name="a"), kc.Input(shape=(3,), name="b")
    m = kc.Model([a, b], layers.Add(name="sum")([a, b]))
    text = _capture(m)
    assert "Connected to" in text and "a[0][0], b[0][0]" in text
    assert len(text.splitlines()[1]) == 108


def test_unbuilt_layers_are_marked():
    m = kc.Sequential([layers.Dense(3)])
    assert "0 (unbuilt)" in _capture(m, line_length=80)


def test_optimizer_params_after_training_as_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    kc.config.set_backend("reference")
    try:
        import numpy as np
        m = kc.Sequential([kc.Input(shape=(4,)), layers.Dense(3)])
        assert "Optimizer params" not in _capture(m)
        for opt, extra in [("rmsprop", 17), ("adam", 32)]:
            m.compile(optimizer=opt, loss="mse")
            m.fit(np.ones((4, 4), "float32"), np.ones((4, 3), "float32"), verbose=0)
            text = _capture(m)
            assert f" Optimizer params: {extra} ({4 * extra:.2f} B)" in text
            assert f" Total params: {15 + extra} " in text
    finally:
        kc.config.set_backend(None)
