"""DLwP ch. 2, "reimplementing our first example from scratch": NaiveDense/NaiveSequential trained with
a GradientTape, plain Variables and assign_sub, then with optimizer.apply_gradients (digits, for speed)."""
import math

import numpy as np

import kcompile as kc
from kcompile import ops


class NaiveDense:
    def __init__(self, input_size, output_size, activation):
        self.activation = activation
        w_shape = (input_size, output_size)
        w_initial_value = np.random.uniform(size=w_shape, low=0, high=1e-1).astype("float32")
        self.W = kc.Variable(w_initial_value)
        b_shape = (output_size,)
        b_initial_value = ops.zeros(b_shape)
        self.b = kc.Variable(b_initial_value)

    def __call__(self, inputs):
        return self.activation(ops.matmul(inputs, self.W) + self.b)

    @property
    def weights(self):
        return [self.W, self.b]


class NaiveSequential:
    def __init__(self, layers):
        self.layers = layers

    def __call__(self, inputs):
        x = inputs
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def weights(self):
        weights = []
        for layer in self.layers:
            weights += layer.weights
        return weights


class BatchGenerator:
    def __init__(self, images, labels, batch_size=128):
        assert len(images) == len(labels)
        self.index = 0
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.num_batches = math.ceil(len(images) / batch_size)

    def next(self):
        images = self.images[self.index: self.index + self.batch_size]
        labels = self.labels[self.index: self.index + self.batch_size]
        self.index += self.batch_size
        return images, labels


def train(update_weights, epochs=10):
    np.random.seed(0)
    (train_images, train_labels), (test_images, test_labels) = kc.datasets.digits.load_data()
    train_images, test_images = train_images / 16.0, test_images / 16.0
    model = NaiveSequential([
        NaiveDense(input_size=64, output_size=64, activation=ops.relu),
        NaiveDense(input_size=64, output_size=10, activation=ops.softmax),
    ])
    assert len(model.weights) == 4

    def one_training_step(model, images_batch, labels_batch):
        with kc.GradientTape() as tape:
            predictions = model(images_batch)
            per_sample_losses = kc.losses.sparse_categorical_crossentropy(labels_batch, predictions)
            average_loss = ops.mean(per_sample_losses)
        gradients = tape.gradient(average_loss, model.weights)
        update_weights(gradients, model.weights)
        return average_loss

    def fit(model, images, labels, epochs, batch_size=128):
        losses = []
        for epoch_counter in range(epochs):
            batch_generator = BatchGenerator(images, labels)
            for batch_counter in range(batch_generator.num_batches):
                images_batch, labels_batch = batch_generator.next()
                loss = one_training_step(model, images_batch, labels_batch)
            losses.append(float(loss))
        return losses

    losses = fit(model, train_images, train_labels, epochs=epochs, batch_size=128)
    predictions = model(test_images)
    predictions = predictions.numpy()
    predicted_labels = np.argmax(predictions, axis=1)
    matches = predicted_labels == test_labels
    return losses, matches.mean()


def test_from_scratch_with_assign_sub():
    learning_rate = 0.5

    def update_weights(gradients, weights):
        for g, w in zip(gradients, weights):
            w.assign_sub(g * learning_rate)

    losses, accuracy = train(update_weights)
    assert losses[-1] < losses[0] and accuracy > 0.85, (losses, accuracy)


def test_from_scratch_with_optimizer():
    optimizer = kc.optimizers.SGD(learning_rate=0.5)

    def update_weights(gradients, weights):
        optimizer.apply_gradients(zip(gradients, weights))

    losses, accuracy = train(update_weights)
    assert losses[-1] < losses[0] and accuracy > 0.85, (losses, accuracy)
    assert optimizer.iterations == 10 * 12
