"""Transposed, 3-D and channels_first layers without Keras: bad arguments and inputs raise errors naming
the layer and the sizes; channels_first equals channels_last on transposed data; configs round-trip."""
import numpy as np
import pytest

import kcompile as kc

from model_helpers import predict_ref

L = kc.layers


@pytest.mark.parametrize("layer,kwargs,words", [
    ("Conv2DTranspose", dict(strides=2, output_padding=2), "output_padding is 2 and strides is 2"),
    ("Conv2DTranspose", dict(strides=(2, 1), output_padding=(1, 1)), "output_padding is 1 and strides is 1"),
    ("Conv1DTranspose", dict(strides=1, output_padding=1), "strictly less than strides"),
    ("Conv2DTranspose", dict(strides=2, dilation_rate=2), "dilation_rate"),
    ("Conv2DTranspose", dict(padding="causal"), "`padding` must be one of"),
    ("Conv1DTranspose", dict(output_padding=-1), "`output_padding` must be an integer >= 0"),
    ("Conv1DTranspose", dict(padding="causal"), "padding must be 'valid' or 'same'"),
    ("Conv3D", dict(groups=4), "filters (2) must be divisible by groups (4)"),
    ("Conv3DTranspose", dict(strides=(1, 2, 2), output_padding=(0, 1, 2)), "output_padding is 2 and strides is 2"),
    ("Conv3DTranspose", dict(strides=2, dilation_rate=2), "dilation_rate"),
])
def test_bad_arguments_name_the_layer(layer, kwargs, words):
    with pytest.raises(ValueError, match=f"layer 'bad'") as info:
        getattr(L, layer)(filters=2, kernel_size=3, name="bad", **kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("layer,shape,words", [
    (lambda: L.Conv2DTranspose(2, 3, name="bad"), (5, 3), "rank 4"),
    (lambda: L.Conv3D(2, 5, name="bad"), (3, 8, 8, 1), "(3, 8, 8) is too small for window (5, 5, 5)"),
    (lambda: L.MaxPooling3D(4, name="bad"), (3, 8, 8, 1), "(3, 8, 8) is too small for window (4, 4, 4)"),
    (lambda: L.UpSampling3D(2, name="bad", data_format="channels_first"), (3, 8, 1), "rank 5"),
    (lambda: L.Conv3D(4, 2, groups=2, name="bad"), (3, 8, 8, 3), "divisible by groups=2"),
    (lambda: L.Conv3DTranspose(2, 3, name="bad"), (3, 8, 8), "rank 5"),
])
def test_bad_inputs_name_the_layer_and_sizes(layer, shape, words):
    with pytest.raises(ValueError, match="layer 'bad'") as info:
        layer()(kc.Input(shape=shape))
    assert words in str(info.value)


def test_wrong_channel_count_on_a_built_transposed_conv():
    layer = L.Conv2DTranspose(2, 3, name="up")
    layer(kc.Input(shape=(5, 5, 3)))
    with pytest.raises(ValueError, match="layer 'up'.*last dimension is 3, got shape \\(None, 5, 5, 4\\)"):
        layer(kc.Input(shape=(5, 5, 4)))


@pytest.mark.parametrize("make,shape", [
    (lambda fmt: L.Conv2DTranspose(3, 3, strides=2, output_padding=1, data_format=fmt), (4, 5, 2)),
    (lambda fmt: L.Conv3D(3, 2, strides=(1, 2, 1), padding="same", data_format=fmt), (3, 5, 4, 2)),
    (lambda fmt: L.AveragePooling3D(2, padding="same", data_format=fmt), (3, 5, 4, 2)),
    (lambda fmt: L.Cropping3D(((1, 0), 1, (0, 1)), data_format=fmt), (3, 5, 4, 2)),
    (lambda fmt: L.GlobalMaxPooling3D(keepdims=True, data_format=fmt), (3, 5, 4, 2)),
])
def test_channels_first_is_channels_last_on_transposed_data(make, shape):
    rng = np.random.default_rng(0)
    last = kc.Sequential([kc.Input(shape=shape), make("channels_last")])
    first = kc.Sequential([kc.Input(shape=(shape[-1], *shape[:-1])), make("channels_first")])
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in last.get_weights()]
    last.set_weights(weights)
    first.set_weights(weights)
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    to_first = (0, len(shape), *range(1, len(shape)))
    want = np.transpose(predict_ref(last, x), to_first)
    np.testing.assert_allclose(predict_ref(first, np.transpose(x, to_first)), want, rtol=1e-5, atol=1e-5)


def test_configs_round_trip():
    for layer in [L.Conv2DTranspose(4, 3, strides=2, output_padding=(1, 0), data_format="channels_first"),
                  L.Conv1DTranspose(2, 3), L.Conv3D(2, 3, padding="same"), L.MaxPooling3D(data_format="channels_first"),
                  L.ZeroPadding3D(((1, 0), 2, 1)), L.UpSampling3D((1, 2, 2)), L.SeparableConv2D(2, 3, data_format="channels_first")]:
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


def test_canonicalize_cancels_the_transposes_between_channels_first_layers():
    from kcompile.passes.canonicalize import canonicalize
    cf = dict(data_format="channels_first")
    inp = kc.Input(shape=(3, 8, 8))
    x = L.MaxPooling2D(2, **cf)(L.Conv2D(4, 3, **cf)(inp))
    graph = kc.Model(inp, L.Conv2DTranspose(2, 3, strides=2, **cf)(x)).forward_graph()
    assert sum(n.op == "transpose" for n in graph.nodes) == 6
    assert sum(n.op == "transpose" for n in canonicalize(graph).nodes) == 2   # in and out of the stack
