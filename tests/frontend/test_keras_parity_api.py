"""Parity with Keras 3 (jax backend) for the losses, metrics, optimizers, schedules and constraints of
issue 16: same weights, data and batch order give the same values (rtol 1e-5); skipped without Keras."""
import io
import os
import zipfile

import numpy as np
from numpy.lib import format as npy_format
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
    pytest.skip("Keras parity tests need KERAS_BACKEND=jax", allow_module_level=True)

import kcompile as kc  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside Keras/NumPy 2

RNG = np.random.default_rng(16)
X = RNG.standard_normal((48, 5)).astype("float32")
W0 = [RNG.standard_normal((5, 6)).astype("float32") * 0.5, RNG.standard_normal(6).astype("float32") * 0.1,
      RNG.standard_normal((6, 3)).astype("float32") * 0.5, RNG.standard_normal(3).astype("float32") * 0.1]


def _targets(kind):
    labels = RNG.integers(0, 3, len(X))
    return {"dense": RNG.standard_normal((len(X), 3)).astype("float32"),
            "binary": RNG.integers(0, 2, (len(X), 3)).astype("float32"),
            "signed": np.where(RNG.random((len(X), 3)) < 0.5, -1.0, 1.0).astype("float32"),
            "onehot": np.eye(3, dtype="float32")[labels],
            "counts": RNG.poisson(1.5, (len(X), 3)).astype("float32")}[kind]


def _model(lib, last_activation):
    L = lib.layers
    model = lib.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh"),
                            L.Dense(3, activation=last_activation)])
    model.set_weights(W0)
    return model


LOSSES = [  # (class, kwargs, targets, last activation)
    ("Huber", {}, "dense", None), ("Huber", {"delta": 0.3}, "dense", None), ("LogCosh", {}, "dense", None),
    ("KLDivergence", {}, "onehot", "softmax"), ("Poisson", {}, "counts", "softplus"),
    ("Hinge", {}, "binary", "tanh"), ("Hinge", {}, "signed", "tanh"), ("SquaredHinge", {}, "binary", "tanh"),
    ("CategoricalHinge", {}, "onehot", None), ("CosineSimilarity", {}, "dense", None),
    ("CosineSimilarity", {"axis": 0}, "dense", None),
]


@pytest.mark.parametrize("name,kwargs,kind,act", LOSSES, ids=[f"{n}-{i}" for i, (n, _, _, _) in enumerate(LOSSES)])
def test_new_losses_match_keras_eagerly_and_in_training(name, kwargs, kind, act):
    y = _targets(kind)
    p = _model(keras, act).predict(X, verbose=0)
    sw = None if kwargs.get("axis") == 0 else RNG.random(len(X)).astype("float32")  # per-feature values
    ours = getattr(kc.losses, name)(**kwargs)(y, p, sample_weight=sw)
    theirs = getattr(keras.losses, name)(**kwargs)(y, p, sample_weight=sw)
    np.testing.assert_allclose(float(ours), float(theirs), rtol=1e-5)
    fn = getattr(kc.losses, {"Huber": "huber", "LogCosh": "log_cosh", "KLDivergence": "kl_divergence",
                             "Poisson": "poisson", "Hinge": "hinge", "SquaredHinge": "squared_hinge",
                             "CategoricalHinge": "categorical_hinge", "CosineSimilarity": "cosine_similarity"}[name])
    kfn = getattr(keras.losses, fn.__name__)
    np.testing.assert_allclose(np.asarray(fn(y, p, **kwargs)), np.asarray(kfn(y, p, **kwargs)), rtol=1e-5, atol=1e-7)
    if kwargs.get("axis") == 0:
        return  # a per-feature loss trains the same way; one training run per formula is enough
    histories = []
    for lib in (kc, keras):
        model = _model(lib, act)
        extra = {"backend": "reference"} if lib is kc else {}
        model.compile(lib.optimizers.SGD(0.1), getattr(lib.losses, name)(**kwargs), **extra)
        histories.append(model.fit(X, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)


def test_losses_are_found_by_name():
    for name, cls in [("huber", "Huber"), ("log_cosh", "LogCosh"), ("kl_divergence", "KLDivergence"),
                      ("poisson", "Poisson"), ("hinge", "Hinge"), ("squared_hinge", "SquaredHinge"),
                      ("categorical_hinge", "CategoricalHinge"), ("cosine_similarity", "CosineSimilarity")]:
        assert type(kc.losses.get(name)).__name__ == cls
        assert kc.losses.get(name).name == getattr(keras.losses, cls)().name


OPTIMIZERS = [
    ("Nadam", dict(learning_rate=0.01)), ("Adamax", dict(learning_rate=0.02)), ("Adadelta", dict(learning_rate=1.0)),
    ("Ftrl", dict(learning_rate=0.1)),
    ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.02,
                  l2_shrinkage_regularization_strength=0.01, beta=0.1, learning_rate_power=-0.7)),
    ("Lion", dict(learning_rate=0.01)), ("Lion", dict(learning_rate=0.01, weight_decay=0.1)),
]


def _fit_classifier(lib, optimizer, backend="reference", epochs=2, **layer_kwargs):
    L = lib.layers
    model = lib.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh", **layer_kwargs),
                            L.Dense(3, activation="softmax")])
    model.set_weights(W0)
    extra = {"backend": backend} if lib is kc else {}
    model.compile(optimizer, "sparse_categorical_crossentropy", **extra)
    y = np.arange(len(X)) % 3
    hist = model.fit(X, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)
    return hist.history["loss"], model.get_weights()


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_new_optimizers_match_keras(name, kwargs):
    ours, our_w = _fit_classifier(kc, getattr(kc.optimizers, name)(**kwargs))
    theirs, their_w = _fit_classifier(keras, getattr(keras.optimizers, name)(**kwargs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    for a, b in zip(our_w, their_w):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_new_optimizer_runs_native_like_reference():
    """The compiled native step runs the same formulas (Nadam: the most ops, its product slot)."""
    ref = _fit_classifier(kc, kc.optimizers.Nadam(0.01), backend="reference")
    nat = _fit_classifier(kc, kc.optimizers.Nadam(0.01), backend="native")
    np.testing.assert_allclose(ref[0], nat[0], rtol=1e-5)
    for a, b in zip(ref[1], nat[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_new_optimizers_apply_gradients_eagerly_like_keras():
    grads = [RNG.standard_normal(w.shape).astype("float32") for w in W0[:2]]
    for name in ("Nadam", "Adamax", "Adadelta", "Ftrl", "Lion"):
        results = []
        for lib in (kc, keras):
            variables = [lib.Variable(w.copy(), name=f"w{i}") for i, w in enumerate(W0[:2])]
            opt = getattr(lib.optimizers, name)(learning_rate=0.05)
            for _ in range(3):
                opt.apply_gradients(zip(grads, variables))
            results.append([np.asarray(v.numpy()) for v in variables])
        for a, b in zip(*results):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    assert type(kc.optimizers.get("nadam")).__name__ == "Nadam"


SCHEDULES = [
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=5)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=4, alpha=0.2, warmup_target=0.3, warmup_steps=2)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=4, end_learning_rate=0.01, power=2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=3, power=0.5, cycle=True)),
    ("PiecewiseConstantDecay", dict(boundaries=[2, 4], values=[0.1, 0.05, 0.01])),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULES)])
def test_schedules_match_keras(name, kwargs):
    ours, theirs = getattr(kc.optimizers.schedules, name)(**kwargs), getattr(keras.optimizers.schedules, name)(**kwargs)
    for step in range(12):
        np.testing.assert_allclose(float(ours(step)), float(theirs(step)), rtol=1e-6, err_msg=f"step {step}")
    assert type(kc.optimizers.schedules.deserialize(kc.optimizers.schedules.serialize(ours))) is type(ours)
    fits = [_fit_classifier(lib, lib.optimizers.SGD(getattr(lib.optimizers.schedules, name)(**kwargs)))
            for lib in (kc, keras)]
    np.testing.assert_allclose(fits[0][0], fits[1][0], rtol=1e-5)


def test_learning_rate_scheduler_matches_keras():
    runs = []
    for lib in (kc, keras):
        L = lib.layers
        model = lib.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")])
        model.set_weights(W0)
        model.compile(lib.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                      **({"backend": "reference"} if lib is kc else {}))
        cb = lib.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
        hist = model.fit(X, np.arange(len(X)) % 3, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
        runs.append(hist.history)
    assert sorted(runs[0]) == sorted(runs[1])
    for key in runs[1]:
        np.testing.assert_allclose(runs[0][key], runs[1][key], rtol=1e-5, err_msg=key)


class _StopAfter(kc.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_where_training_stopped(tmp_path):
    """An interrupted fit rerun with the same backup dir ends with the uninterrupted run's weights (Adam's
    slots and step count restored too) and its remaining epochs' losses."""
    y = np.arange(len(X)) % 3

    def fresh():
        L = kc.layers
        model = kc.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")])
        model.set_weights(W0)
        model.compile(kc.optimizers.Adam(0.01), "sparse_categorical_crossentropy", backend="native")
        return model

    straight = fresh()
    full = straight.fit(X, y, batch_size=16, epochs=4, shuffle=False, verbose=0).history["loss"]
    backup = kc.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupted"):
        fresh().fit(X, y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=[backup, _StopAfter(1)])
    assert (tmp_path / "backup" / "training_metadata.json").exists()
    resumed = fresh()
    hist = resumed.fit(X, y, batch_size=16, epochs=4, shuffle=False, verbose=0,
                       callbacks=[kc.callbacks.BackupAndRestore(tmp_path / "backup")])
    assert hist.epoch == [2, 3]
    np.testing.assert_allclose(hist.history["loss"], full[2:], rtol=1e-5)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "backup").exists()   # delete_checkpoint after a completed fit


def test_backup_and_restore_resumes_dropout_where_it_stopped(tmp_path):
    """The backup keeps the training state model.save keeps, the dropout RNG counter included, so a
    resumed fit draws the masks the uninterrupted run drew and ends with its weights."""
    y = np.arange(len(X)) % 3
    L = kc.layers

    def fresh():
        model = kc.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh"), L.Dropout(0.5, seed=7),
                               L.Dense(3, activation="softmax")])
        model.set_weights(W0)
        model.compile(kc.optimizers.Adam(0.01), "sparse_categorical_crossentropy", backend="native")
        return model

    straight = fresh()
    full = straight.fit(X, y, batch_size=16, epochs=3, shuffle=False, verbose=0).history["loss"]
    with pytest.raises(RuntimeError, match="interrupted"):
        fresh().fit(X, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                    callbacks=[kc.callbacks.BackupAndRestore(tmp_path / "b"), _StopAfter(0)])
    resumed = fresh()
    hist = resumed.fit(X, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                       callbacks=[kc.callbacks.BackupAndRestore(tmp_path / "b")])
    np.testing.assert_allclose(hist.history["loss"], full[1:], rtol=1e-5)
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_backup_and_restore_refuses_a_damaged_or_foreign_optimizer_state(tmp_path):
    """The optimizer state is read through the loading budget and checked against the model."""
    y = np.arange(len(X)) % 3
    L = kc.layers

    def model():
        m = kc.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")])
        m.compile(kc.optimizers.Adam(0.01), "sparse_categorical_crossentropy", backend="native")
        return m

    with pytest.raises(RuntimeError, match="interrupted"):
        model().fit(X, y, batch_size=16, epochs=3, verbose=0,
                    callbacks=[kc.callbacks.BackupAndRestore(tmp_path / "b"), _StopAfter(0)])
    state = tmp_path / "b" / "optimizer.npz"
    arrays = dict(np.load(state))
    slot = next(iter(arrays))
    cases = {"of another model": {**arrays, slot: np.zeros((7, 7), np.float32)},
             "unexpected array": {**arrays, "s99": np.zeros(3, np.float32)}}
    for message, bad in cases.items():
        np.savez(state, **bad)
        with pytest.raises(ValueError, match=message):
            model().fit(X, y, batch_size=16, epochs=3, verbose=0, callbacks=[kc.callbacks.BackupAndRestore(tmp_path / "b")])
    # an array header that declares 4 TB: refused by the loading budget before anything is allocated
    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(state, "w") as z:
        z.writestr("s0.npy", header.getvalue())
    with pytest.raises(ValueError, match="BackupAndRestore.*loading budget"):
        model().fit(X, y, batch_size=16, epochs=3, verbose=0, callbacks=[kc.callbacks.BackupAndRestore(tmp_path / "b")])


def test_history_and_progbar_logger_are_classes():
    assert issubclass(kc.callbacks.History, kc.callbacks.Callback)
    assert issubclass(kc.callbacks.ProgbarLogger, kc.callbacks.Callback)
    with pytest.raises(ValueError, match="save_freq"):
        kc.callbacks.BackupAndRestore("x", save_freq="batch")


def test_train_on_batch_returns_that_batchs_loss_and_metrics_like_keras():
    y = np.arange(len(X)) % 3
    runs = []
    for lib in (kc, keras):
        L = lib.layers
        model = lib.Sequential([L.Input(shape=(5,)), L.Dense(6, activation="tanh"), L.Dense(3, activation="softmax")])
        model.set_weights(W0)
        model.compile(lib.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"],
                      **({"backend": "reference"} if lib is kc else {}))
        runs.append([model.train_on_batch(X[i:i + 16], y[i:i + 16]) for i in (0, 16, 32)]
                    + [model.test_on_batch(X[:16], y[:16])])
    np.testing.assert_allclose(np.asarray(runs[0], "float64"), np.asarray(runs[1], "float64"), rtol=1e-5)


class GuideModel(kc.Model):
    """Keras 3's guide pattern: compute_loss, the optimizer, then every tracked metric; and test/predict steps."""

    def train_step(self, data):
        x, y = data
        with kc.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss)
            else:
                metric.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        self.metrics[0].update_state(self.compute_loss(y=y, y_pred=y_pred))
        return self.compute_metrics(x, y, y_pred)

    def predict_step(self, data):
        (x,) = data
        return kc.ops.multiply(self(x, training=False), 2.0)


def _guide_model(cls):
    inputs = kc.Input(shape=(5,))
    hidden = kc.layers.Dense(6, activation="tanh")(inputs)
    model = cls(inputs, kc.layers.Dense(3, activation="softmax")(hidden))
    model.set_weights(W0)
    model.compile(kc.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend="reference")
    return model


def test_custom_steps_see_the_compiled_metrics_and_match_the_built_in_steps():
    y = np.arange(len(X)) % 3
    custom, plain = _guide_model(GuideModel), _guide_model(kc.Model)
    assert [m.name for m in custom.metrics] == ["loss", "compile_metrics"]
    h1 = custom.fit(X, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(X, y)).history
    h2 = plain.fit(X, y, batch_size=16, epochs=2, shuffle=False, verbose=0, validation_data=(X, y)).history
    assert sorted(h1) == sorted(h2) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in h2:
        np.testing.assert_allclose(h1[key], h2[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(custom.predict(X, batch_size=20, verbose=0), 2 * plain.predict(X, verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(custom.predict_on_batch(X[:4]), 2 * plain.predict_on_batch(X[:4]), rtol=1e-6)


METRICS = [  # (class, kwargs, kind of data)
    ("TruePositives", {}, "binary"), ("FalsePositives", {"thresholds": [0.3, 0.6]}, "binary"),
    ("TrueNegatives", {}, "binary"), ("FalseNegatives", {"thresholds": 0.7}, "binary"),
    ("F1Score", {}, "multiclass"), ("F1Score", {"average": "macro"}, "multiclass"),
    ("F1Score", {"average": "micro", "threshold": 0.4}, "multiclass"),
    ("F1Score", {"average": "weighted"}, "multiclass"), ("FBetaScore", {"beta": 2.0}, "multiclass"),
    ("MeanIoU", {"num_classes": 3}, "ids"), ("MeanIoU", {"num_classes": 4, "ignore_class": 0}, "ids"),
    ("MeanIoU", {"num_classes": 3, "sparse_y_true": False, "sparse_y_pred": False}, "multiclass"),
    ("R2Score", {}, "regression"), ("R2Score", {"class_aggregation": None}, "regression"),
    ("R2Score", {"class_aggregation": "variance_weighted_average", "num_regressors": 2}, "regression"),
]


def _metric_data(kind, n):
    if kind == "binary":
        return RNG.integers(0, 2, n).astype("float32"), RNG.random(n).astype("float32")
    if kind == "multiclass":
        return np.eye(3, dtype="float32")[RNG.integers(0, 3, n)], RNG.random((n, 3)).astype("float32")
    if kind == "ids":
        return RNG.integers(0, 3, n), RNG.integers(0, 3, n)
    y = RNG.standard_normal((n, 2)).astype("float32")
    return y, (y + 0.5 * RNG.standard_normal((n, 2))).astype("float32")


@pytest.mark.parametrize("name,kwargs,kind", METRICS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(METRICS)])
def test_new_metrics_match_keras(name, kwargs, kind):
    ours, theirs = getattr(kc.metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    for n in (12, 20):
        y, p = _metric_data(kind, n)
        sw = RNG.integers(1, 3, n).astype("float32")   # whole weights: MeanIoU counts in integers
        ours.update_state(y, p, sample_weight=sw)
        theirs.update_state(y, p, sample_weight=sw)
    np.testing.assert_allclose(np.asarray(ours.result()), np.asarray(theirs.result()), rtol=1e-5, atol=1e-7)
    ours.reset_state()
    theirs.reset_state()
    y, p = _metric_data(kind, 9)
    ours.update_state(y, p)
    theirs.update_state(y, p)
    np.testing.assert_allclose(np.asarray(ours.result()), np.asarray(theirs.result()), rtol=1e-5, atol=1e-7)


def test_new_metrics_in_fit_match_keras():
    y = np.eye(3, dtype="float32")[np.arange(len(X)) % 3]
    runs = []
    for lib in (kc, keras):
        model = _model(lib, "softmax")
        model.compile(lib.optimizers.SGD(0.1), "categorical_crossentropy",
                      metrics=[lib.metrics.F1Score(average="macro"), lib.metrics.R2Score(),
                               lib.metrics.TruePositives(name="tp")],  # (Keras numbers repeated default names)
                      **({"backend": "reference"} if lib is kc else {}))
        runs.append(model.fit(X, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history)
    assert sorted(runs[0]) == sorted(runs[1])
    for key in runs[1]:
        np.testing.assert_allclose(runs[0][key], runs[1][key], rtol=1e-5, err_msg=key)


CONSTRAINTS = [("MaxNorm", {"max_value": 0.5}), ("NonNeg", {}), ("UnitNorm", {}), ("UnitNorm", {"axis": 1}),
               ("MinMaxNorm", {"min_value": 0.3, "max_value": 0.6, "rate": 0.7})]


@pytest.mark.parametrize("name,kwargs", CONSTRAINTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONSTRAINTS)])
def test_constraints_match_keras_eagerly(name, kwargs):
    w = RNG.standard_normal((5, 4)).astype("float32")
    ours = getattr(kc.constraints, name)(**kwargs)(w)
    theirs = getattr(keras.constraints, name)(**kwargs)(w)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-7)
    assert kc.constraints.get(kc.constraints.serialize(getattr(kc.constraints, name)(**kwargs))).get_config() == \
        getattr(kc.constraints, name)(**kwargs).get_config()


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_constraints_apply_after_each_update_in_the_compiled_step_like_keras(backend):
    """The projection is IR after the optimizer update: native and reference match Keras weight for weight."""
    runs = []
    for lib in (kc, keras):
        L = lib.layers
        model = lib.Sequential([
            L.Input(shape=(5,)),
            L.Dense(6, activation="tanh", kernel_constraint=lib.constraints.MaxNorm(0.8),
                    bias_constraint=lib.constraints.NonNeg()),
            L.Dense(3, activation="softmax", kernel_constraint=lib.constraints.UnitNorm())])
        model.set_weights(W0)
        model.compile(lib.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                      **({"backend": backend} if lib is kc else {}))
        hist = model.fit(X, np.arange(len(X)) % 3, batch_size=16, epochs=2, shuffle=False, verbose=0)
        runs.append((hist.history["loss"], model.get_weights()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert runs[0][1][1].min() >= 0.0


def test_constraints_apply_in_eager_apply_gradients_and_serialize():
    layer = kc.layers.Dense(3, kernel_constraint=kc.constraints.NonNeg())
    layer.build((None, 4))
    opt = kc.optimizers.SGD(1.0)
    opt.apply_gradients([(np.ones((4, 3), "float32") * 10, layer.kernel), (np.ones(3, "float32"), layer.bias)])
    assert layer.kernel.numpy().min() == 0.0 and layer.bias.numpy().max() < 0
    config = layer.get_config()
    assert config["kernel_constraint"]["class_name"] == "NonNeg" and config["bias_constraint"] is None
    assert isinstance(kc.layers.Dense.from_config(config).kernel_constraint, kc.constraints.NonNeg)


def test_constraints_on_depthwise_separable_and_normalization_weights_match_keras():
    xi = RNG.standard_normal((16, 6, 6, 2)).astype("float32")
    yi = np.arange(16) % 3
    runs = []
    for lib in (kc, keras):
        L, C = lib.layers, lib.constraints
        model = lib.Sequential([
            L.Input(shape=(6, 6, 2)),
            L.DepthwiseConv2D(3, depthwise_constraint=C.MaxNorm(0.5, axis=[0, 1]), bias_constraint=C.NonNeg()),
            L.BatchNormalization(gamma_constraint=C.NonNeg(), beta_constraint=C.MaxNorm(0.1)),
            L.SeparableConv2D(3, 3, pointwise_constraint=C.UnitNorm(axis=[0, 1, 2])),
            L.LayerNormalization(gamma_constraint=C.MinMaxNorm(0.5, 1.0)),
            L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")])
        if lib is kc:
            weights = [RNG.standard_normal(w.shape).astype("float32") * 0.3 + (1.0 if "variance" in w.path else 0)
                       for w in model.weights]
        model.set_weights(weights)
        model.compile(lib.optimizers.SGD(0.2), "sparse_categorical_crossentropy",
                      **({"backend": "reference"} if lib is kc else {}))
        hist = model.fit(xi, yi, batch_size=8, epochs=2, shuffle=False, verbose=0)
        runs.append((hist.history["loss"], model.get_weights()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
