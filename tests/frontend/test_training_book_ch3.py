"""DLwP ch. 3 "anatomy of a neural network": Dense(1) on two Gaussian clouds with compile/fit/evaluate/predict,
a hand-made validation split, RMSprop(0.1), MSE and BinaryAccuracy (listings 3.23-3.25, kc for keras)."""
import numpy as np

import kcompile as kc


def test_book_chapter3_fit_evaluate_predict():
    np.random.seed(0)
    num_samples_per_class = 1000
    negative_samples = np.random.multivariate_normal(mean=[0, 3], cov=[[1, 0.5], [0.5, 1]],
                                                     size=num_samples_per_class)
    positive_samples = np.random.multivariate_normal(mean=[3, 0], cov=[[1, 0.5], [0.5, 1]],
                                                     size=num_samples_per_class)
    inputs = np.vstack((negative_samples, positive_samples)).astype(np.float32)
    targets = np.vstack((np.zeros((num_samples_per_class, 1), dtype="float32"),
                         np.ones((num_samples_per_class, 1), dtype="float32")))

    model = kc.Sequential([kc.layers.Dense(1)])
    model.compile(optimizer=kc.optimizers.RMSprop(learning_rate=0.1),
                  loss=kc.losses.MeanSquaredError(),
                  metrics=[kc.metrics.BinaryAccuracy()])

    indices_permutation = np.random.permutation(len(inputs))
    shuffled_inputs = inputs[indices_permutation]
    shuffled_targets = targets[indices_permutation]
    num_validation_samples = int(0.3 * len(inputs))
    val_inputs = shuffled_inputs[:num_validation_samples]
    val_targets = shuffled_targets[:num_validation_samples]
    training_inputs = shuffled_inputs[num_validation_samples:]
    training_targets = shuffled_targets[num_validation_samples:]
    history = model.fit(training_inputs, training_targets, epochs=5, batch_size=16,
                        validation_data=(val_inputs, val_targets), verbose=0)
    loss_and_metrics = model.evaluate(val_inputs, val_targets, batch_size=128, verbose=0)
    predictions = model.predict(val_inputs, batch_size=128, verbose=0)

    assert sorted(history.history) == ["binary_accuracy", "loss", "val_binary_accuracy", "val_loss"]
    assert loss_and_metrics[1] > 0.95
    assert np.isclose(loss_and_metrics[1], np.mean((predictions > 0.5) == val_targets))
    assert predictions.shape == (600, 1)
