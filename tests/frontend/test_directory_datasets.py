"""text_dataset_from_directory / image_dataset_from_directory: file indexing, shuffling and splits equal
Keras 3's own index_directory and get_training_or_validation_split (pure Python, run here), labels as Keras
encodes them; images are resized by kc.ops.image.resize (its own Keras parity tests)."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
from keras.src.utils import dataset_utils  # noqa: E402

import kcompile as kc  # noqa: E402
from kcompile.frontend import directory_datasets as dd  # noqa: E402


def _tree(tmp_path):
    files = {"neg/b.txt": "bad movie", "neg/a.txt": "awful", "neg/sub/c.txt": "dull plot", "neg/skip.md": "x",
             "pos/z.TXT": "great", "pos/y.txt": "loved it", "pos/x.txt": "fine acting", ".hidden/q.txt": "no"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("kwargs", [{"shuffle": False}, {"shuffle": True, "seed": 7},
                                    {"shuffle": True, "seed": 7, "class_names": ["pos", "neg"]},
                                    {"shuffle": False, "labels": None}])
def test_index_directory_matches_keras(tmp_path, kwargs):
    folder = _tree(tmp_path)
    args = dict(labels=kwargs.pop("labels", "inferred"), formats=(".txt",), **kwargs)
    ours = dd.index_directory(folder, **args)
    theirs = dataset_utils.index_directory(folder, verbose=False, **args)
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    assert (ours[1] is None and theirs[1] is None) or list(ours[1]) == list(theirs[1])
    for subset in ("training", "validation"):
        got = dd.split(ours[0], ours[1], 0.4, subset)
        want = dataset_utils.get_training_or_validation_split(theirs[0], theirs[1], 0.4, subset)
        assert got[0] == want[0]


def test_text_dataset_labels_splits_and_max_length(tmp_path):
    folder = _tree(tmp_path)
    train, val = kc.utils.text_dataset_from_directory(folder, batch_size=2, seed=3, validation_split=0.34,
                                                      subset="both", label_mode="categorical", max_length=5)
    assert train.class_names == ["neg", "pos"] and len(train.file_paths) == 4 and len(val.file_paths) == 2
    assert not set(train.file_paths) & set(val.file_paths)
    texts, labels = [], []
    for x, y in train:
        assert x.dtype == object and y.dtype == np.float32 and y.shape[1] == 2
        texts += list(x)
        labels += list(y.argmax(1))
    by_path = {p: open(p, "rb").read()[:5] for p in train.file_paths}
    assert sorted(texts) == sorted(by_path.values())
    assert sorted(labels) == sorted(int(os.path.relpath(p, folder).startswith("pos")) for p in train.file_paths)
    binary = kc.utils.text_dataset_from_directory(folder, batch_size=None, shuffle=False, label_mode="binary")
    first_x, first_y = next(iter(binary))
    assert first_x == b"awful" and first_y.shape == (1,) and first_y.dtype == np.float32
    vectorize = kc.layers.TextVectorization(output_sequence_length=3)
    vectorize.adapt(np.concatenate([x for x, _ in train]))
    assert vectorize(next(iter(train))[0]).shape == (2, 3)


def test_bad_arguments_are_refused(tmp_path):
    folder = _tree(tmp_path)
    with pytest.raises(ValueError, match="you must provide a `seed`"):
        kc.utils.text_dataset_from_directory(folder, validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="go together"):
        kc.utils.text_dataset_from_directory(folder, validation_split=0.2, seed=1)
    with pytest.raises(ValueError, match="exactly 2 class_names"):
        kc.utils.text_dataset_from_directory(folder, label_mode="binary", class_names=["neg"])
    with pytest.raises(ValueError, match="did not match the names of the subdirectories"):
        kc.utils.text_dataset_from_directory(folder, class_names=["cats"])
    with pytest.raises(ValueError, match="lengths of `labels` to match"):
        kc.utils.text_dataset_from_directory(folder, labels=[0, 1])


def test_image_dataset_decodes_with_pillow_or_refuses_clearly(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.png").write_bytes(b"not really a png")
    try:
        import PIL  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="decodes images with Pillow, which is not installed"):
            kc.utils.image_dataset_from_directory(str(tmp_path))
        return
    from PIL import Image
    rgb = np.random.default_rng(1).integers(0, 256, (6, 10, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "cats" / "a.png")
    ds = kc.utils.image_dataset_from_directory(str(tmp_path), image_size=(6, 10), batch_size=1, shuffle=False)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(x[0], rgb.astype(np.float32))
    assert y.tolist() == [0] and ds.class_names == ["cats"]
