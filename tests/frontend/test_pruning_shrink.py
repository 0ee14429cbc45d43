"""kc.pruning.shrink: all-zero neurons/filters removed, the next layer rewired, outputs unchanged."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

P = kc.pruning


def _zero_units(layer, units, bias=0.3):
    """Zero the kernel columns of `units` and give them a nonzero bias (a constant output to fold)."""
    kernel, b = layer.get_weights()
    kernel[..., units] = 0.0
    b[:] = bias
    layer.set_weights([kernel, b])


def _same_outputs(model, small, x):
    """Eager inference calls (NumPy reference ops): no native compile in these tests."""
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_dense_to_dense_with_activation_and_dropout_between():
    model = kc.Sequential([kc.Input((10,)), layers.Dense(12, activation="relu"), layers.Dropout(0.3),
                           layers.Activation("tanh"), layers.Dense(7, activation="sigmoid"), layers.Dense(3)])
    _zero_units(model.layers[0], [0, 3, 4, 11])
    _zero_units(model.layers[3], [1, 2])
    small = P.shrink(model)
    assert [layer.units for layer in small.layers if isinstance(layer, layers.Dense)] == [8, 5, 3]
    assert small.layers[-1].kernel.shape == (5, 3)
    x = np.random.default_rng(0).normal(size=(9, 10)).astype(np.float32)
    _same_outputs(model, small, x)
    assert model.layers[0].units == 12 and model.layers[0].kernel.shape == (10, 12)   # the input is untouched


def test_neuron_pruning_then_strip_then_shrink():
    x = np.random.default_rng(1).normal(size=(64, 16)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = kc.Sequential([kc.Input((16,)), layers.Dense(20, activation="relu", name="h"), layers.Dense(2, name="o")])
    hidden = P.prune_low_magnitude(model.layers[0], block_size=(-1, 1),
                                   pruning_schedule=P.ConstantSparsity(0.5, 0, frequency=1))
    pruned = kc.Sequential([kc.Input((16,)), hidden, model.layers[1]])
    pruned.compile(optimizer="adam", loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True),
                   backend="reference")
    pruned.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[P.UpdatePruningStep()])
    stripped = P.strip_pruning(pruned)
    small = P.shrink(stripped)
    assert small.get_layer("h").units == 10 and small.get_layer("o").kernel.shape == (10, 2)
    _same_outputs(stripped, small, x)


def test_conv_filters_through_pooling_conv_flatten_dense():
    inputs = kc.Input((10, 10, 3))
    h = layers.Conv2D(6, 3, activation="relu")(inputs)
    h = layers.MaxPooling2D(2)(h)
    h = layers.Conv2D(5, 2, activation="relu")(h)
    h = layers.Flatten()(h)
    model = kc.Model(inputs, layers.Dense(4)(h))
    conv1, conv2 = model.layers[1], model.layers[3]
    _zero_units(conv1, [1, 4])
    _zero_units(conv2, [0, 2], bias=-0.2)
    small = P.shrink(model)
    convs = [layer for layer in small.layers if isinstance(layer, layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 3] and convs[1].kernel.shape == (2, 2, 4, 3)
    assert small.layers[-1].kernel.shape == (3 * 3 * 3, 4)
    x = np.random.default_rng(2).normal(size=(5, 10, 10, 3)).astype(np.float32)
    _same_outputs(model, small, x)


def test_conv1d_global_pooling_dense():
    model = kc.Sequential([kc.Input((12, 4)), layers.Conv1D(8, 3, padding="same", activation="relu"),
                           layers.GlobalAveragePooling1D(), layers.Dense(2)])
    _zero_units(model.layers[0], [2, 5, 6])
    small = P.shrink(model)
    assert small.layers[0].filters == 5 and small.layers[-1].kernel.shape == (5, 2)
    _same_outputs(model, small, np.random.default_rng(3).normal(size=(4, 12, 4)).astype(np.float32))


def test_output_layer_and_models_without_zero_units_are_kept():
    model = kc.Sequential([kc.Input((6,)), layers.Dense(5), layers.Dense(4)])
    _zero_units(model.layers[1], [0])               # an output unit: the output shape must stay
    small = P.shrink(model)
    assert [layer.units for layer in small.layers] == [5, 4]
    _same_outputs(model, small, np.ones((2, 6), np.float32))


def test_shrink_refuses_what_it_cannot_rewire():
    model = kc.Sequential([kc.Input((6,)), layers.Dense(5, name="d5"), layers.BatchNormalization(name="bn"),
                           layers.Dense(2)])
    _zero_units(model.layers[0], [1])
    with pytest.raises(ValueError, match="layer 'd5' \\(Dense\\) has 1 all-zero units.*'bn' \\(BatchNormalization\\) "
                                         "cannot be rewired"):
        P.shrink(model)
    inputs = kc.Input((6,))
    h = layers.Dense(5, name="fan")(inputs)
    model = kc.Model(inputs, [layers.Dense(2)(h), layers.Dense(3)(h)])
    _zero_units(model.get_layer("fan"), [0])
    with pytest.raises(ValueError, match="layer 'fan'.*single next layer"):
        P.shrink(model)
    model = kc.Sequential([kc.Input((8, 8, 2)), layers.Conv2D(4, 3, name="c"),
                           layers.Conv2D(2, 3, padding="same", name="same")])
    _zero_units(model.layers[0], [3])
    with pytest.raises(ValueError, match="layer 'c'.*'same'.*padding='same'"):
        P.shrink(model)
    wrapped = P.prune_low_magnitude(kc.Sequential([kc.Input((6,)), layers.Dense(3), layers.Dense(2)]))
    with pytest.raises(ValueError, match="strip_pruning first"):
        P.shrink(wrapped)
