"""Keras arguments kcompile cannot honour raise a clear error naming the layer/function and the argument,
never train or predict silently without them ("never a silent wrong answer")."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers, losses, metrics, optimizers


# (what is built, exception, words the message must contain)
REFUSED = [
    # features not implemented
    (lambda: layers.Dense(2, lora_rank=2), NotImplementedError, "LoRA"),
    (lambda: layers.LayerNormalization(rms_scaling=True), NotImplementedError, "rms_scaling"),
    # data_format must be channels_last or channels_first (the latter through a boundary transpose)
    (lambda: layers.Flatten(data_format="channels_middle"), ValueError, "data_format"),
    (lambda: layers.ZeroPadding2D(1, data_format="NCHW"), ValueError, "data_format"),
    (lambda: layers.UpSampling3D(2, data_format="nchw"), ValueError, "data_format"),
    (lambda: layers.Conv2DTranspose(2, 3, data_format="first"), ValueError, "data_format"),
    (lambda: layers.MaxPooling3D(data_format="channels"), ValueError, "data_format"),
    (lambda: layers.Conv3D(2, 3, groups=3), ValueError, "groups"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2), ValueError, "output_padding"),
    # dtype policies other than float32 would change the arithmetic
    (lambda: layers.Dense(2, dtype="float64"), NotImplementedError, "dtype='float64'"),
    (lambda: layers.Dense(2, dtype="mixed_float16"), NotImplementedError, "mixed_float16"),
    (lambda: layers.Conv2D(2, 3, dtype={"class_name": "DTypePolicy", "config": {"name": "bfloat16"}}),
     NotImplementedError, "bfloat16"),
    (lambda: losses.MeanSquaredError(dtype="float64"), NotImplementedError, "dtype"),
    (lambda: metrics.Mean(dtype="float64"), NotImplementedError, "dtype"),
    (lambda: metrics.MeanSquaredError(dtype="float16"), NotImplementedError, "dtype"),
    # optimizer features kcompile's update step does not have
    (lambda: optimizers.Adam(use_ema=True), ValueError, "use_ema"),
    (lambda: optimizers.SGD(gradient_accumulation_steps=4), ValueError, "gradient_accumulation_steps"),
    (lambda: optimizers.RMSprop(loss_scale_factor=128.0), ValueError, "loss_scale_factor"),
    (lambda: optimizers.Adam(clipnorm=1.0, clipvalue=1.0), ValueError, "clipnorm"),
    (lambda: optimizers.Adagrad(use_ema=True, ema_momentum=0.9), ValueError, "use_ema"),
    # losses and metrics
    (lambda: losses.SparseCategoricalCrossentropy(ignore_class=0)(np.array([0]), np.ones((1, 2), np.float32)),
     ValueError, "ignore_class"),
    (lambda: metrics.Precision(top_k=1), ValueError, "top_k"),
    (lambda: metrics.AUC(multi_label=True), ValueError, "multi_label"),
    (lambda: metrics.AUC(summation_method="trapezoid"), ValueError, "summation method"),
    # inputs
    (lambda: layers.InputLayer(shape=(3,), input_tensor=kc.Input(shape=(3,))), ValueError, "input_tensor"),
    (lambda: kc.Input(shape=(3,), optional=True), ValueError, "optional"),
    # kc.ops
    (lambda: kc.ops.max_pool(np.ones((1, 2, 4, 4), np.float32), 2, data_format="NCHW"), ValueError,
     "data_format"),
    (lambda: kc.ops.conv(np.ones((1, 2, 4, 4), np.float32), np.ones((1, 1, 2, 1), np.float32),
                         data_format="channels_middle"), ValueError, "data_format"),
]


@pytest.mark.parametrize("build,error,words", REFUSED, ids=[f"{i}-{w}" for i, (_, _, w) in enumerate(REFUSED)])
def test_refused_argument_raises_naming_it(build, error, words):
    with pytest.raises(error) as info:
        build()
    assert words.lower() in str(info.value).lower()


def _tiny_model():
    model = kc.Sequential([kc.Input(shape=(3,)), layers.Dense(1)])
    model.compile(optimizers.SGD(0.1), "mse", backend="reference")
    return model


def test_evaluate_refuses_unknown_keyword():
    """Keras 3 raises on unknown evaluate() keywords; dropping e.g. class_weight would change the loss."""
    model, x, y = _tiny_model(), np.ones((4, 3), np.float32), np.ones((4, 1), np.float32)
    with pytest.raises(ValueError, match="class_weight"):
        model.evaluate(x, y, class_weight={0: 2.0}, verbose=0)
    assert np.isfinite(model.evaluate(x, y, verbose=0, _use_cached_eval_dataset=True))


def test_class_weight_with_sample_weight_refused_as_in_keras():
    model, x, y = _tiny_model(), np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    for call in (lambda: model.fit(x, y, class_weight={0: 2.0}, sample_weight=np.ones(4), verbose=0),
                 lambda: model.train_on_batch(x, y, class_weight={0: 2.0}, sample_weight=np.ones(4))):
        with pytest.raises(ValueError, match="class_weight.*sample_weight"):
            call()


# arguments that do not change numerics stay accepted (Keras defaults or float32 spelled otherwise)
ACCEPTED = [
    lambda: layers.Dense(2, dtype="float32"),
    lambda: layers.Dense(2, dtype=np.float32),
    lambda: layers.Dense(2, dtype={"class_name": "DTypePolicy", "config": {"name": "float32"}}),
    lambda: layers.Flatten(data_format="channels_last"),
    lambda: layers.ZeroPadding1D(1, data_format=None),
    lambda: layers.BatchNormalization(synchronized=True),
    lambda: layers.LSTM(2, unroll=True),
    lambda: layers.Lambda(lambda x: x, output_shape=(3,)),
    lambda: optimizers.Adam(use_ema=False, ema_momentum=0.99, gradient_accumulation_steps=None),
    lambda: optimizers.SGD(ema_momentum=0.9, ema_overwrite_frequency=10, loss_scale_factor=1.0),
    lambda: losses.MeanSquaredError(dtype="float32"),
    lambda: metrics.AUC(summation_method="Majoring"),
    lambda: metrics.Mean(dtype="float32"),
]


@pytest.mark.parametrize("build", ACCEPTED)
def test_harmless_arguments_accepted(build):
    assert build() is not None


def test_compile_accepts_execution_only_arguments():
    model = kc.Sequential([kc.Input(shape=(3,)), layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=True, jit_compile=False, steps_per_execution=4, auto_scale_loss=True,
                  backend="reference")
    assert model.compiled


def test_lambda_passes_training_to_a_function_that_takes_it():
    """Keras's Lambda hands `training` to a function with that parameter; dropping it would train as inference."""
    double_in_training = layers.Lambda(lambda x, training=False: x * 2.0 if training else x)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(double_in_training(x, training=True).numpy(), 2 * x)
    np.testing.assert_array_equal(double_in_training(x).numpy(), x)
    model = kc.Sequential([kc.Input(shape=(3,)), double_in_training])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    np.testing.assert_array_equal(model(x, training=True).numpy(), 2 * x)


def test_lambda_sees_training_true_inside_fit():
    zero_in_training = layers.Lambda(lambda x, training=False: x * 0.0 if training else x)
    model = kc.Sequential([kc.Input(shape=(3,)), layers.Dense(2), zero_in_training])
    model.compile(optimizers.SGD(0.1), "mse", backend="reference")
    history = model.fit(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32), verbose=0)
    assert history.history["loss"] == [pytest.approx(1.0)]   # mean((0 - 1)^2): the training branch ran


def test_argmax_over_all_axes_keeps_dims_like_numpy():
    x = np.array([[1.0, 7.0, 3.0], [4.0, 0.0, 2.0]], np.float32)
    kept = kc.ops.argmax(x, keepdims=True).numpy()
    np.testing.assert_array_equal(kept, np.argmax(x, keepdims=True))
    assert kc.ops.argmin(x, keepdims=True).numpy().shape == (1, 1)
    assert int(kc.ops.argmax(x).numpy()) == 1


def test_cropping2d_default_crops_nothing_as_in_keras():
    layer = layers.Cropping2D()
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)
    assert layer.cropping == ((0, 0), (0, 0))
    np.testing.assert_array_equal(layer(x).numpy(), x)
    assert layers.Cropping1D().cropping == ((1, 1),)


def test_arange_infers_its_dtype_like_keras():
    np.testing.assert_array_equal(kc.ops.arange(0, 1, 0.25).numpy(), np.array([0, 0.25, 0.5, 0.75], np.float32))
    assert kc.ops.arange(0, 1, 0.25).numpy().dtype == np.float32
    assert kc.ops.arange(3).numpy().dtype == np.int32
    assert kc.ops.arange(3, dtype="float32").numpy().dtype == np.float32


def _linear_fit(**fit_kwargs):
    model = kc.Sequential([kc.Input(shape=(3,)), layers.Dense(1, kernel_initializer="ones")])
    model.compile(optimizers.SGD(0.1), "mse", backend="reference")
    x = np.arange(24, dtype=np.float32).reshape(8, 3) / 24
    y = np.array([[0.0], [1.0], [0.0], [2.0], [1.0], [0.0], [3.0], [1.0]], np.float32)
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, **fit_kwargs)
    return model, x, y


def test_steps_per_epoch_continues_through_the_data_like_keras():
    """Keras's EpochIterator: epoch 2 of steps_per_epoch=1 trains on the second batch, not the first again."""
    by_steps, _, _ = _linear_fit(epochs=2, steps_per_epoch=1)
    one_pass, _, _ = _linear_fit(epochs=1)
    for a, b in zip(by_steps.get_weights(), one_pass.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_steps_beyond_the_data_stop_instead_of_wrapping():
    with pytest.warns(UserWarning, match="ran out of data"):
        model, x, y = _linear_fit(epochs=1, steps_per_epoch=5)
    assert int(model.optimizer.iterations) == 2
    assert model.evaluate(x, y, batch_size=4, steps=5, verbose=0) == pytest.approx(
        model.evaluate(x, y, batch_size=4, verbose=0))
    assert model.predict(x, batch_size=4, steps=5, verbose=0).shape == (8, 1)


def test_class_weight_does_not_weigh_the_validation_split():
    """Keras applies class_weight to the training split only: val_loss is the plain loss on the held-out rows."""
    model = kc.Sequential([kc.Input(shape=(3,)), layers.Dense(2, activation="softmax")])
    model.compile(optimizers.SGD(0.1), "sparse_categorical_crossentropy", backend="reference")
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(8, 3)
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    hist = model.fit(x, y, validation_split=0.5, class_weight={0: 5.0, 1: 5.0}, shuffle=False, verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(model.evaluate(x[4:], y[4:], verbose=0), rel=1e-5)
