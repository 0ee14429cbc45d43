"""kc.pruning end to end: wrapping, masks in the compiled step, callbacks, strip_pruning, save/load."""
import warnings

import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

P = kc.pruning


def _data(n=64, d=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, :classes].argmax(1)).astype(np.int32)


def _mlp(d=12):
    return kc.Sequential([kc.Input((d,)), layers.Dense(16, activation="relu"), layers.Dense(3)])


def _compile(model, optimizer="adam", backend=None):
    kwargs = {} if backend is None else {"backend": backend}
    model.compile(optimizer=optimizer, loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True), **kwargs)
    return model


class KernelSpy(kc.callbacks.Callback):
    """Copies of every wrapper's kernel and mask after each batch (before the epoch-end re-mask)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append([(layer.layer.kernel.numpy().copy(), layer.pruning_vars[0][1].numpy().copy())
                          for layer in self.model.layers if isinstance(layer, P.PruneLowMagnitude)])


def test_model_pruning_native_reaches_the_schedule_and_strips():
    x, y = _data()
    base = _mlp()
    model = P.prune_low_magnitude(base, pruning_schedule=P.ConstantSparsity(0.75, begin_step=0, frequency=2))
    assert all(isinstance(layer, P.PruneLowMagnitude) for layer in model.layers)
    assert model.layers[0].layer is base.layers[0]          # weights shared with the model passed in
    _compile(model)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[P.UpdatePruningStep()])
    for layer in model.layers:
        assert int(layer.pruning_step.numpy()) == 8
        kernel, mask = layer.layer.kernel.numpy(), layer.pruning_vars[0][1].numpy()
        assert mask.mean() == pytest.approx(0.25, abs=0.01)
        assert (kernel[mask == 0] == 0).all()
    graph = model.train_step_graph(y)
    mask_path = model.layers[0].pruning_vars[0][1].path
    masked = [n for n in graph.nodes if n.op == "mul" and any(v.param_name == mask_path for v in n.inputs)]
    assert masked, "the mask must multiply the weight inside the compiled training step"
    stripped = P.strip_pruning(model)
    assert [type(layer) for layer in stripped.layers] == [layers.Dense, layers.Dense]
    assert [v.path for v in stripped.weights] == [v.path for v in base.weights]
    np.testing.assert_allclose(stripped.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert np.mean(stripped.get_weights()[0] == 0) == pytest.approx(0.75, abs=0.01)


def test_backward_sees_the_masked_weight():
    """With plain SGD, a pruned weight gets no gradient: it stays exactly 0 after later steps."""
    x, y = _data()
    model = P.prune_low_magnitude(_mlp(), pruning_schedule=P.ConstantSparsity(0.5, begin_step=1, end_step=1))
    _compile(model, optimizer=kc.optimizers.SGD(0.5), backend="reference")
    spy = KernelSpy()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[P.UpdatePruningStep(), spy])
    first, last = spy.seen[0][0], spy.seen[-1][0]
    kernel, mask = last
    assert (mask == first[1]).all() and mask.mean() == 0.5       # pruned once, at step 1
    assert (kernel[mask == 0] == 0).all()                       # never regrown by a gradient
    assert not np.allclose(kernel[mask == 1], first[0][mask == 1])  # the kept weights did train


def test_functional_conv_model_block_and_m_by_n_and_summaries(tmp_path):
    inputs = kc.Input((6, 6, 4))
    h = layers.Conv2D(8, 3, activation="relu", name="c")(inputs)
    h = layers.Flatten()(h)
    h = kc.ops.multiply(h, 0.5)
    outputs = layers.Dense(3, name="d")(layers.Dropout(0.1)(h))
    model = kc.Model(inputs, outputs)
    conv = P.prune_low_magnitude(model.layers[1], sparsity_m_by_n=(2, 4))
    dense = P.prune_low_magnitude(model.get_layer(index=-1), block_size=(4, 1),
                                  pruning_schedule=P.ConstantSparsity(0.5, 0, frequency=1))
    pruned = P.prune_low_magnitude(model, pruning_schedule=P.ConstantSparsity(0.5, 0))
    assert isinstance(conv, P.PruneLowMagnitude) and isinstance(dense, P.PruneLowMagnitude)
    x = np.random.default_rng(0).normal(size=(20, 6, 6, 4)).astype(np.float32)
    y = np.arange(20, dtype=np.int32) % 3
    inputs = kc.Input((6, 6, 4))
    h = layers.Flatten()(conv(inputs))
    out = dense(layers.Dropout(0.1)(kc.ops.multiply(h, 0.5)))
    mixed = _compile(kc.Model(inputs, out), backend="reference")
    mixed.fit(x, y, batch_size=10, epochs=2, verbose=0,
              callbacks=[P.UpdatePruningStep(), P.PruningSummaries(str(tmp_path))])
    cmask = conv.pruning_vars[0][1].numpy()
    assert (cmask.reshape(3, 3, 1, 4, 8).sum(axis=3) == 2).all()          # 2 zeros in each 4 inputs
    dmask = dense.pruning_vars[0][1].numpy()
    assert dmask.mean() == 0.5 and (dmask.reshape(-1, 4, 3).min(1) == dmask.reshape(-1, 4, 3).max(1)).all()
    logs = P.read_summaries(str(tmp_path))
    assert [r["epoch"] for r in logs] == [0, 1, "end"] and logs[-1]["iteration"] == 4
    assert logs[-1]["prune_low_magnitude_d/mask/sparsity"] == pytest.approx(0.5)
    assert logs[0]["prune_low_magnitude_c/mask/sparsity"] == 0.0
    assert [type(layer).__name__ for layer in pruned.layers].count("PruneLowMagnitude") == 2


def test_embedding_pruning_with_a_list_of_layers():
    emb, dense = P.prune_low_magnitude([layers.Embedding(20, 8), layers.Dense(2)],
                                       pruning_schedule=P.ConstantSparsity(0.6, 0, frequency=1))
    model = kc.Sequential([kc.Input((5,), dtype="int32"), emb, layers.Flatten(), dense])
    x = np.random.default_rng(1).integers(0, 20, size=(16, 5)).astype(np.int32)
    y = (x[:, 0] % 2).astype(np.int32)
    _compile(model, backend="reference").fit(x, y, batch_size=8, epochs=1, verbose=0,
                                             callbacks=[P.UpdatePruningStep()])
    assert emb.pruning_vars[0][1].numpy().mean() == pytest.approx(0.4, abs=0.01)
    assert (emb.layer.embeddings.numpy()[emb.pruning_vars[0][1].numpy() == 0] == 0).all()


def test_save_and_load_mid_pruning_keeps_masks_and_step(tmp_path):
    x, y = _data()
    schedule = P.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=2)
    model = _compile(P.prune_low_magnitude(_mlp(), pruning_schedule=schedule), backend="reference")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[P.UpdatePruningStep()])
    path = tmp_path / "pruned.keras"
    model.save(path)
    loaded = kc.models.load_model(path)
    assert [type(layer).__name__ for layer in loaded.layers] == ["PruneLowMagnitude"] * 2
    for a, b in zip(model.weights, loaded.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(loaded.layers[0].pruning_step.numpy()) == 4
    assert loaded.layers[0].pruning_schedule.get_config() == schedule.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    _compile(loaded, backend="reference").fit(x, y, batch_size=16, epochs=1, verbose=0,
                                              callbacks=[P.UpdatePruningStep()])
    assert int(loaded.layers[0].pruning_step.numpy()) == 8
    assert loaded.layers[0].pruning_vars[0][1].numpy().mean() == pytest.approx(0.2, abs=0.01)


def test_custom_layer_with_prunable_weights():
    class Scale(layers.Layer, P.PrunableLayer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 4), name="w")
            self.v = self.add_weight(shape=(4, 4), name="v")

        def call(self, inputs):
            return kc.ops.matmul(kc.ops.matmul(inputs, self.w), self.v)

        def get_prunable_weights(self):
            return [self.w, self.v]

    wrapped = P.prune_low_magnitude(Scale(), pruning_schedule=P.ConstantSparsity(0.5, 0, frequency=1))
    model = _compile(kc.Sequential([kc.Input((8,)), wrapped]), backend="reference")
    x = np.random.default_rng(2).normal(size=(8, 8)).astype(np.float32)
    model.compile(optimizer="sgd", loss="mse", backend="reference")
    model.fit(x, np.zeros((8, 4), np.float32), batch_size=8, epochs=1, verbose=0,
              callbacks=[P.UpdatePruningStep()])
    assert [(attr, mask.numpy().mean()) for attr, mask, _ in wrapped.pruning_vars] == [("w", 0.5), ("v", 0.5)]
    assert wrapped.pruning_vars[1][1].path.endswith("/v_mask")


def test_training_without_the_callback_is_refused():
    x, y = _data()
    model = _compile(P.prune_low_magnitude(_mlp()), backend="reference")
    with pytest.raises(ValueError, match="requires the UpdatePruningStep callback"):
        model.fit(x, y, epochs=1, verbose=0)


def test_strip_pruning_of_an_unpruned_model_warns_and_returns_it():
    model = _mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert P.strip_pruning(model) is model
    assert any("no pruning wrappers" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="expects a kcompile Model"):
        P.strip_pruning(layers.Dense(2))


def test_keywords_for_a_model_are_refused_not_ignored():
    with pytest.raises(TypeError, match="pruning_policy"):
        P.prune_low_magnitude(_mlp(), pruning_policy=object())


@pytest.mark.parametrize("make, message", [
    (lambda: P.prune_low_magnitude(layers.LSTM(4)), "layer 'lstm.*' \\(LSTM\\) cannot be pruned"),
    (lambda: P.prune_low_magnitude(kc.Sequential([kc.Input((4, 4, 2)), layers.DepthwiseConv2D(3)])),
     "layer 'depthwise_conv2d.*' \\(DepthwiseConv2D\\) cannot be pruned"),
    (lambda: P.prune_low_magnitude(layers.Dense(3), block_pooling_type="MEAN"), "block_pooling_type"),
    (lambda: P.prune_low_magnitude(layers.Dense(3), block_size=(0, 2)), "block_size must be"),
    (lambda: P.prune_low_magnitude("dense"), "can only prune"),
    (lambda: kc.Sequential([kc.Input((10,)), P.prune_low_magnitude(layers.Dense(3, name="d10"),
                                                                   sparsity_m_by_n=(2, 4))]),
     "layer 'd10'.*multiple of 4.*10 inputs"),
    (lambda: kc.Sequential([kc.Input((10,)), P.prune_low_magnitude(layers.Dense(4, name="b10"),
                                                                   block_size=(4, 1))]),
     "layer 'b10'.*block_size \\(4, 1\\) does not divide"),
    (lambda: P.prune_low_magnitude(layers.Dense(3), sparsity_m_by_n=(4, 2)), "0 < m < n"),
])
def test_bad_input_names_the_layer(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_custom_loop_with_kc_function_and_a_manually_driven_callback():
    """As TF-MOT's custom-loop recipe: the callback's hooks are called by hand around a compiled step."""
    x, y = _data()
    model = P.prune_low_magnitude(_mlp(), pruning_schedule=P.ConstantSparsity(0.5, 0, frequency=2))
    optimizer, loss_fn = kc.optimizers.Adam(), kc.losses.SparseCategoricalCrossentropy(from_logits=True)
    step_callback = P.UpdatePruningStep()
    step_callback.set_model(model)
    step_callback.on_train_begin()

    @kc.function
    def train_step(xb, yb):
        with kc.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return loss

    for i in range(4):
        step_callback.on_train_batch_begin(i)
        train_step(x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16])
    step_callback.on_epoch_end(0)
    wrapper = model.layers[0]
    mask = wrapper.pruning_vars[0][1].numpy()
    assert mask.mean() == 0.5 and int(wrapper.pruning_step.numpy()) == 4
    assert (P.strip_pruning(model).get_weights()[0][mask == 0] == 0).all()
