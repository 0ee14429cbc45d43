"""kc.data.Dataset (the part of tf.data the book uses) and fit/evaluate/predict on a Dataset."""
import numpy as np
import pytest

import kcompile as kc
from kcompile import layers

X = np.arange(20, dtype=np.float32).reshape(10, 2)
Y = np.arange(10)


def test_slices_batch_take_repeat():
    ds = kc.data.Dataset.from_tensor_slices((X, Y))
    first = next(iter(ds))
    np.testing.assert_array_equal(first[0], X[0])
    assert first[1] == 0
    batches = list(ds.batch(4).prefetch(kc.data.AUTOTUNE))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[1][0], X[4:8])
    assert [len(b[1]) for b in ds.batch(4, drop_remainder=True)] == [4, 4]
    assert len(list(ds.take(3).repeat(2))) == 6
    d = next(iter(kc.data.Dataset.from_tensor_slices({"a": X, "b": Y}).batch(3)))
    assert d["a"].shape == (3, 2) and d["b"].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="same first dimension"):
        kc.data.Dataset.from_tensor_slices((X, Y[:3]))


def test_shuffle_is_a_permutation_reshuffled_each_iteration():
    ds = kc.data.Dataset.from_tensor_slices(Y).shuffle(10, seed=1)
    a, b = [int(v) for v in ds], [int(v) for v in ds]
    assert sorted(a) == sorted(b) == list(range(10)) and a != b
    fixed = kc.data.Dataset.from_tensor_slices(Y).shuffle(10, seed=1, reshuffle_each_iteration=False)
    assert [int(v) for v in fixed] == [int(v) for v in fixed]
    small = [int(v) for v in kc.data.Dataset.from_tensor_slices(Y).shuffle(2, seed=0)]
    assert small[0] in (0, 1) and sorted(small) == list(range(10))   # a buffer of 2 draws from the next 2


def test_map_unpacks_tuples_and_returns_numpy():
    ds = kc.data.Dataset.from_tensor_slices((X, Y)).map(lambda x, y: (x * 2.0, y + 1)).batch(5)
    x, y = next(iter(ds))
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    np.testing.assert_allclose(x, X[:5] * 2)
    assert y.tolist() == [1, 2, 3, 4, 5]


def test_fit_evaluate_predict_accept_a_dataset():
    def model():
        m = kc.Sequential([layers.Input((2,)), layers.Dense(3, activation="softmax")])
        m.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"], backend="reference")
        return m

    y = Y % 3
    a, b = model(), model()
    b.set_weights(a.get_weights())
    ha = a.fit(X, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    ds = kc.data.Dataset.from_tensor_slices((X, y)).batch(4)
    hb = b.fit(ds, epochs=2, verbose=0, validation_data=ds)
    np.testing.assert_allclose(hb.history["loss"], ha.history["loss"], rtol=1e-6)
    assert "val_loss" in hb.history
    np.testing.assert_allclose(b.evaluate(ds, verbose=0), a.evaluate(X, y, batch_size=4, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(b.predict(kc.data.Dataset.from_tensor_slices(X).batch(3), verbose=0),
                               a.predict(X, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="must be batched"):
        b.fit(kc.data.Dataset.from_tensor_slices((X, y)), verbose=0)
    with pytest.raises(ValueError, match="must not be given"):
        b.fit(ds, y, verbose=0)
