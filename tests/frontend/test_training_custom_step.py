"""Book listings (Deep Learning with Python, ch. 7): train_step overrides with GradientTape, custom loops."""
import numpy as np

import kcompile as kc
from kcompile import layers

RNG = np.random.default_rng(7)
train_labels = RNG.integers(0, 2, 256)
train_images = (RNG.random((256, 20)) + train_labels[:, None] * np.linspace(-1, 1, 20)).astype("float32")

loss_fn = kc.losses.SparseCategoricalCrossentropy()
loss_tracker = kc.metrics.Mean(name="loss")


class CustomModel(kc.Model):
    def train_step(self, data):
        inputs, targets = data
        with kc.GradientTape() as tape:
            predictions = self(inputs, training=True)
            loss = loss_fn(targets, predictions)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        loss_tracker.update_state(loss)
        return {"loss": loss_tracker.result()}

    @property
    def metrics(self):
        return [loss_tracker]


def get_model(cls=kc.Model):
    inputs = kc.Input(shape=(20,))
    features = layers.Dense(32, activation="relu")(inputs)
    features = layers.Dropout(0.5)(features)
    outputs = layers.Dense(2, activation="softmax")(features)
    return cls(inputs, outputs)


def test_train_step_override_with_gradient_tape():
    model = get_model(CustomModel)
    model.compile(optimizer=kc.optimizers.RMSprop())
    hist = model.fit(train_images, train_labels, epochs=3, verbose=0)
    assert list(hist.history) == ["loss"] and len(hist.history["loss"]) == 3
    assert hist.history["loss"][-1] < hist.history["loss"][0]


class CompiledLossModel(kc.Model):
    def train_step(self, data):
        inputs, targets = data
        with kc.GradientTape() as tape:
            predictions = self(inputs, training=True)
            loss = self.compiled_loss(targets, predictions)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.compiled_metrics.update_state(targets, predictions)
        return {m.name: m.result() for m in self.metrics}


def test_train_step_override_with_compiled_loss_and_metrics():
    model = get_model(CompiledLossModel)
    model.compile(optimizer=kc.optimizers.RMSprop(), loss=kc.losses.SparseCategoricalCrossentropy(),
                  metrics=[kc.metrics.SparseCategoricalAccuracy()])
    hist = model.fit(train_images, train_labels, epochs=3, verbose=0)
    assert sorted(hist.history) == ["loss", "sparse_categorical_accuracy"]
    assert hist.history["sparse_categorical_accuracy"][-1] > 0.6


def test_custom_training_loop_matches_fit_semantics():
    """The book's low-level loop: metrics updated by hand, optimizer.apply_gradients."""
    model = get_model()
    loss_fn = kc.losses.SparseCategoricalCrossentropy()
    optimizer = kc.optimizers.RMSprop()
    metrics = [kc.metrics.SparseCategoricalAccuracy()]
    loss_tracking_metric = kc.metrics.Mean()

    def train_step(inputs, targets):
        with kc.GradientTape() as tape:
            predictions = model(inputs, training=True)
            loss = loss_fn(targets, predictions)
        gradients = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))
        logs = {}
        for metric in metrics:
            metric.update_state(targets, predictions)
            logs[metric.name] = metric.result()
        loss_tracking_metric.update_state(loss)
        logs["loss"] = loss_tracking_metric.result()
        return logs

    def reset_metrics():
        for metric in metrics:
            metric.reset_state()
        loss_tracking_metric.reset_state()

    first = None
    for epoch in range(8):
        reset_metrics()
        for start in range(0, 256, 32):
            logs = train_step(train_images[start:start + 32], train_labels[start:start + 32])
        first = first or logs["loss"]
    assert logs["loss"] < first and logs["sparse_categorical_accuracy"] > 0.6
    assert optimizer.iterations == 64


def test_apply_gradients_equals_graph_step():
    """optimizer.apply_gradients (eager) and fit (graph) give the same weights for the same gradients."""
    results = []
    for eager in (True, False):
        model = kc.Sequential([layers.Dense(3, activation="softmax", input_shape=(20,))])
        model.set_weights([np.full((20, 3), 0.01, np.float32), np.zeros(3, np.float32)])
        opt = kc.optimizers.Adam(0.01)
        model.compile(opt, "sparse_categorical_crossentropy", backend="reference")
        x, y = train_images[:16], train_labels[:16]
        for _ in range(3):
            if eager:
                with kc.GradientTape() as tape:
                    loss = kc.losses.sparse_categorical_crossentropy(y, model(x))
                    loss = kc.ops.mean(loss)
                opt.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
            else:
                model.train_on_batch(x, y)
        results.append(model.get_weights()[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-7)


class RootMeanSquaredError(kc.metrics.Metric):
    """DLwP listing 7.21, with kc.ops in place of tf."""

    def __init__(self, name="rmse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mse_sum = self.add_weight(name="mse_sum", initializer="zeros")
        self.total_samples = self.add_weight(name="total_samples", initializer="zeros", dtype="int32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = kc.ops.one_hot(y_true, kc.ops.shape(y_pred)[1])
        mse = kc.ops.sum(kc.ops.square(y_true - y_pred))
        self.mse_sum.assign_add(mse)
        num_samples = kc.ops.shape(y_pred)[0]
        self.total_samples.assign_add(num_samples)

    def result(self):
        return kc.ops.sqrt(self.mse_sum / kc.ops.cast(self.total_samples, "float32"))

    def reset_state(self):
        self.mse_sum.assign(0.)
        self.total_samples.assign(0)


class LossHistory(kc.callbacks.Callback):
    """DLwP listing 7.23 (without the plot): hooks written with positional logs."""

    def on_train_begin(self, logs):
        self.per_batch_losses = []

    def on_batch_end(self, batch, logs):
        self.per_batch_losses.append(logs.get("loss"))

    def on_epoch_end(self, epoch, logs):
        self.per_batch_losses = self.per_batch_losses[-1:]


def test_book_custom_metric_and_callbacks(tmp_path):
    model = get_model()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", RootMeanSquaredError()])
    callbacks_list = [
        kc.callbacks.EarlyStopping(monitor="val_accuracy", patience=2),
        kc.callbacks.ModelCheckpoint(filepath=str(tmp_path / "checkpoint_path.keras"), monitor="val_loss",
                                     save_best_only=True),
        LossHistory(),
    ]
    hist = model.fit(train_images[:192], train_labels[:192], epochs=3, callbacks=callbacks_list, verbose=0,
                     validation_data=(train_images[192:], train_labels[192:]))
    assert sorted(hist.history) == ["accuracy", "loss", "rmse", "val_accuracy", "val_loss", "val_rmse"]
    pred = model.predict(train_images[192:], verbose=0)
    rmse = np.sqrt(np.sum((np.eye(2)[train_labels[192:]] - pred) ** 2) / 64)
    assert np.isclose(model.evaluate(train_images[192:], train_labels[192:], verbose=0)[2], rmse, rtol=1e-5)
    assert kc.models.load_model(str(tmp_path / "checkpoint_path.keras")) is not None
    assert len(callbacks_list[2].per_batch_losses) == 1
