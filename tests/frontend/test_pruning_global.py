"""threshold_scope='global': one magnitude threshold over all the weights a prune_low_magnitude call wraps."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers
from kcompile.frontend.pruning import masks as M

P = kc.pruning


def _data(n=96, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, :3].argmax(1)).astype(np.int32)


def _mlp(scale_second=1.0):
    model = kc.Sequential([kc.Input((12,)), layers.Dense(32, activation="relu"), layers.Dense(3)])
    first, second = model.layers
    second.kernel.assign(second.kernel.numpy() * scale_second)   # magnitudes the two layers do not share
    return model


def _fit(model, x, y, epochs=2):
    model.compile(optimizer="adam", loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[P.UpdatePruningStep()])
    return model


def test_one_threshold_over_both_layers_reaches_the_total_sparsity():
    x, y = _data()
    model = P.prune_low_magnitude(_mlp(scale_second=4.0), threshold_scope="global",
                                  pruning_schedule=P.ConstantSparsity(0.8, begin_step=0, frequency=3))
    _fit(model, x, y)
    kernels = [layer.layer.kernel.numpy() for layer in model.layers]
    masks = [layer.pruning_vars[0][1].numpy() for layer in model.layers]
    thresholds = {float(layer.pruning_vars[0][2].numpy()) for layer in model.layers}
    assert len(thresholds) == 1
    total = sum(m.size for m in masks)
    assert sum((m == 0).sum() for m in masks) / total == pytest.approx(0.8, abs=1.0 / total)
    # the larger-magnitude output layer keeps more of its weights than the schedule's 80 %
    assert masks[1].mean() > 0.2 > masks[0].mean()
    for kernel, mask in zip(kernels, masks):
        assert (kernel[mask == 0] == 0).all()


def test_global_masks_equal_a_threshold_on_the_concatenated_magnitudes():
    model = P.prune_low_magnitude(_mlp(scale_second=3.0), threshold_scope="global",
                                  pruning_schedule=P.ConstantSparsity(0.6, begin_step=0, frequency=1))
    model.build((None, 12))
    wrappers = model.layers
    weights = [np.abs(w.layer.kernel.numpy()) for w in wrappers]
    callback = P.UpdatePruningStep()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    flat = np.sort(np.concatenate([w.ravel() for w in weights]))[::-1]
    kth = flat[int(round(flat.size * 0.4)) - 1]
    for w, wrapper in zip(weights, wrappers):
        np.testing.assert_array_equal(wrapper.pruning_vars[0][1].numpy(), (w >= kth).astype(np.float32))


def test_global_block_pruning_pools_before_ranking():
    model = P.prune_low_magnitude(_mlp(), threshold_scope="global", block_size=(4, 1),
                                  pruning_schedule=P.ConstantSparsity(0.5, begin_step=0, frequency=1))
    model.build((None, 12))
    callback = P.UpdatePruningStep()
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_train_batch_begin(0)
    scores = [M.block_scores(w.layer.kernel.numpy(), (4, 1), "AVG") for w in model.layers]
    t = M.shared_threshold(scores, 0.5)
    for score, wrapper in zip(scores, model.layers):
        mask = wrapper.pruning_vars[0][1].numpy()
        np.testing.assert_array_equal(mask, np.repeat(score >= t, 4, axis=0).astype(np.float32))


def test_layer_scope_is_tf_mot_and_the_default():
    model = P.prune_low_magnitude(_mlp(scale_second=4.0), pruning_schedule=P.ConstantSparsity(0.8, begin_step=0, frequency=2))
    assert all(layer.threshold_group is None for layer in model.layers)
    _fit(model, *_data(), epochs=1)
    assert [layer.pruning_vars[0][1].numpy().mean() for layer in model.layers] == pytest.approx([0.2, 0.2], abs=0.02)


def test_save_and_load_keeps_the_group(tmp_path):
    x, y = _data()
    model = _fit(P.prune_low_magnitude(_mlp(scale_second=4.0), threshold_scope="global",
                                       pruning_schedule=P.PolynomialDecay(0.0, 0.8, 0, 12, frequency=2)), x, y, epochs=1)
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    loaded = kc.models.load_model(path)
    assert {layer.threshold_group for layer in loaded.layers} == {model.layers[0].threshold_group}
    _fit(loaded, x, y, epochs=2)
    masks = [layer.pruning_vars[0][1].numpy() for layer in loaded.layers]
    assert sum((m == 0).sum() for m in masks) / sum(m.size for m in masks) == pytest.approx(0.8, abs=0.01)


def test_bad_scope_and_m_by_n_are_refused():
    with pytest.raises(ValueError, match="threshold_scope must be 'layer' or 'global'"):
        P.prune_low_magnitude(_mlp(), threshold_scope="model")
    with pytest.raises(ValueError, match="sparsity_m_by_n prunes within each group"):
        P.prune_low_magnitude(_mlp(), threshold_scope="global", sparsity_m_by_n=(2, 4))


def test_a_group_with_two_schedules_is_refused():
    first, second = _mlp().layers
    a = P.PruneLowMagnitude(first, P.ConstantSparsity(0.5, 0), threshold_group="g")
    b = P.PruneLowMagnitude(second, P.ConstantSparsity(0.7, 0), threshold_group="g")
    model = kc.Sequential([kc.Input((12,)), a, b])
    model.compile(optimizer="adam", loss=kc.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="share the threshold group 'g' but have different schedules"):
        model.fit(*_data(), verbose=0, callbacks=[P.UpdatePruningStep()])
