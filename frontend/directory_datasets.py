"""text_dataset_from_directory and image_dataset_from_directory: Keras 3's arguments and file indexing.

Files are indexed as keras/src/utils/dataset_utils.index_directory does (class folders in sorted order or
`class_names` order, files in sorted os.walk order, then one RandomState(seed) permutation shared by paths
and labels) and split as get_training_or_validation_split does (the validation subset is the last
int(validation_split * n) files). Elements are read lazily into a kc.data.Dataset (shuffled with a buffer
of 8 batches, as Keras's tf.data pipeline). Images are decoded with Pillow when it is installed (else a
clear ImportError) and resized by kc.ops.image.resize (Keras's crop/pad to aspect ratio, TF's rule).
"""
from __future__ import annotations

import os

import numpy as np

from .data import Dataset
from .ops_image import resize

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
PIL_MODES = {"grayscale": "L", "rgb": "RGB", "rgba": "RGBA"}


# -- indexing (Keras's index_directory) -------------------------------------------------------
def index_directory(directory, labels, formats, class_names=None, shuffle=True, seed=None, follow_links=False):
    """(file paths, integer labels or None, class names) as Keras lists them."""
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} does not exist or is not a folder")
    if labels == "inferred":
        subdirs = [d for d in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, d)) and not d.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ValueError("The `class_names` passed did not match the names of the subdirectories of the "
                                 f"target directory. Expected: {subdirs} (or a subset of it), but received: "
                                 f"class_names={class_names}")
            subdirs = list(class_names)
    else:
        if class_names is not None:
            raise ValueError("`class_names` can only be given with labels='inferred'")
        subdirs = [""]
    files, found = [], []
    for index, subdir in enumerate(subdirs):
        folder = os.path.join(directory, subdir)
        name = os.path.basename(folder)
        for root, _, names in sorted(os.walk(folder, followlinks=follow_links), key=lambda w: w[0]):
            for fname in sorted(names):
                if fname.lower().endswith(formats):
                    files.append(os.path.join(name, os.path.relpath(os.path.join(root, fname), folder)))
                    found.append(index)
    if labels == "inferred":
        labels = np.asarray(found, np.int32)
    elif labels is None:
        subdirs = None
    else:
        if len(labels) != len(files):
            raise ValueError(f"Expected the lengths of `labels` to match the number of files in the target directory. "
                             f"len(labels) is {len(labels)} while we found {len(files)} files in directory {directory}.")
        subdirs = [str(label) for label in sorted(set(labels))]
    paths = [os.path.join(directory, f) for f in files]
    if shuffle:
        seed = np.random.randint(1e6) if seed is None else seed
        np.random.RandomState(seed).shuffle(paths)
        if labels is not None:
            np.random.RandomState(seed).shuffle(labels)
    return paths, labels, subdirs


def split(paths, labels, validation_split, subset):
    """Keras's get_training_or_validation_split: the validation subset is the last files."""
    if not validation_split:
        return paths, labels
    n_val = int(validation_split * len(paths))
    if subset == "training":
        return paths[:-n_val], None if labels is None else labels[:-n_val]
    if subset == "validation":
        return paths[-n_val:], None if labels is None else labels[-n_val:]
    raise ValueError(f'`subset` must be either "training" or "validation", received: {subset}')


def _check(labels, label_mode, class_names, validation_split, subset, shuffle, seed):
    if labels not in ("inferred", None) and not isinstance(labels, (list, tuple)):
        raise ValueError("`labels` argument should be a list/tuple of integer labels, of the same size as the "
                         f"number of files in the target directory, or 'inferred' or None. Received: labels={labels}")
    if class_names is not None and labels != "inferred":
        raise ValueError("You can only pass `class_names` if `labels='inferred'`.")
    if label_mode not in ("int", "categorical", "binary", None):
        raise ValueError('`label_mode` argument must be one of "int", "categorical", "binary", or None. '
                         f"Received: label_mode={label_mode}")
    if validation_split and not 0 < validation_split < 1:
        raise ValueError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset in ("training", "validation", "both")):
        raise ValueError("`validation_split` and `subset` go together: subset is 'training', 'validation' or "
                         f"'both'; received validation_split={validation_split}, subset={subset}")
    if validation_split and shuffle and seed is None:
        raise ValueError("If using `validation_split` and shuffling the data, you must provide a `seed` argument, "
                         "to make sure that there is no overlap between the training and validation subset.")


def _label_array(labels, label_mode, num_classes):
    if label_mode == "binary":
        if num_classes != 2:
            raise ValueError(f'When passing `label_mode="binary"`, there must be exactly 2 class_names. Received: '
                             f"class_names has {num_classes} classes")
        return np.asarray(labels, np.float32).reshape(-1, 1)
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, np.int64)]
    return np.asarray(labels, np.int32)


def _datasets(directory, labels, label_mode, class_names, formats, batch_size, shuffle, seed, validation_split,
              subset, follow_links, load):
    """One Dataset (or [training, validation] for subset="both") of load(path) elements with their labels."""
    _check(labels, label_mode, class_names, validation_split, subset, shuffle, seed)
    if labels is None:
        label_mode = None
    paths, found, names = index_directory(directory, labels, formats, class_names, shuffle, seed, follow_links)
    if not paths:
        raise ValueError(f"No files found in directory {directory}. Allowed formats: {formats}")
    subsets = ["training", "validation"] if subset == "both" else [subset]
    out = []
    for which in subsets:
        part, part_labels = split(paths, found, validation_split, which)
        ys = None if label_mode is None else _label_array(part_labels, label_mode, len(names))

        def make(part=part, ys=ys):
            for i, path in enumerate(part):
                yield load(path) if ys is None else (load(path), ys[i])
        ds = Dataset(make)
        if shuffle:
            ds = ds.shuffle(buffer_size=(batch_size or 1) * 8, seed=seed)
        if batch_size is not None:
            ds = ds.batch(batch_size)
        ds.class_names, ds.file_paths = names, list(part)
        out.append(ds)
    return out if subset == "both" else out[0]


# -- text ---------------------------------------------------------------------------------------
def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, batch_size=32,
                                max_length=None, shuffle=True, seed=None, validation_split=None, subset=None,
                                follow_links=False, verbose=True):
    """A Dataset of (text, label) from .txt files in class folders; texts are bytes, as tf.string yields."""
    def load(path):
        with open(path, "rb") as f:
            data = f.read()
        return np.asarray(data if max_length is None else data[:max_length], dtype=object)
    return _datasets(directory, labels, label_mode, class_names, (".txt",), batch_size, shuffle, seed,
                     validation_split, subset, follow_links, load)


# -- images -------------------------------------------------------------------------------------
def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                 color_mode="rgb", batch_size=32, image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear", follow_links=False,
                                 crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, data_format=None,
                                 verbose=True):
    """A Dataset of (float32 image (h, w, channels) in [0, 255], label) from image files in class folders."""
    if color_mode not in CHANNELS:
        raise ValueError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. Received: color_mode={color_mode}')
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation={interpolation!r} is not supported (kcompile resizes with 'bilinear' or "
                         "'nearest', as TensorFlow does)")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `crop_to_aspect_ratio`, `pad_to_aspect_ratio` can be set to `True`.")
    if data_format not in (None, "channels_last"):
        raise ValueError("channels_first images are not supported by kcompile")
    image_module = _pillow()
    size = tuple(int(s) for s in image_size)

    def load(path):
        with image_module.open(path) as img:
            pixels = np.asarray(img.convert(PIL_MODES[color_mode]), np.float32)
        pixels = pixels.reshape(pixels.shape[:2] + (CHANNELS[color_mode],))
        return np.asarray(resize(pixels, size, interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
                                 pad_to_aspect_ratio=pad_to_aspect_ratio).numpy())
    return _datasets(directory, labels, label_mode, class_names, IMAGE_FORMATS, batch_size, shuffle, seed,
                     validation_split, subset, follow_links, load)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("image_dataset_from_directory decodes images with Pillow, which is not installed: "
                          "pip install pillow") from None
    return Image
